"""Image checks: decodable, size and aspect bounds, a pixel-count guard read from the header before any
decoding (decompression bombs), mode conversion to RGB (CMYK, palette, 16-bit, alpha) and EXIF orientation."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field

from sailvl.curation.step import Filter, StepParams, register_step

EXIF_ORIENTATION = 0x0112


class ImageChecksParams(StepParams):
    min_side: int = Field(16, ge=1, description="Reject images whose shorter side is below this (pixels).")
    max_aspect_ratio: float = Field(
        8.0, ge=1.0, description="Reject when long side / short side exceeds this."
    )
    max_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Reject when width*height (from the header, before decoding) exceeds this.",
    )
    decode: bool = Field(
        True, description="Fully decode to catch truncated files (False: header-only checks)."
    )
    fix: bool = Field(
        True, description="Convert to 8-bit RGB (alpha composited on white) and apply EXIF orientation."
    )
    require_image: bool = Field(True, description="Reject records that have no image.")


def read_image_bytes(ref: str | bytes | Path) -> bytes:
    """Bytes of an image reference (a path or raw bytes); raises FileNotFoundError for missing paths."""
    if isinstance(ref, bytes):
        return ref
    return Path(ref).read_bytes()


def open_header(data: bytes) -> Image.Image:
    """`Image.open` without decoding pixels; Pillow's own bomb check becomes a ValueError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ValueError("too_many_pixels") from exc


def to_rgb(img: Image.Image) -> tuple[Image.Image, list[str]]:
    """Convert any Pillow mode to 8-bit RGB; returns the image and the fixes applied (empty if none)."""
    fixes: list[str] = []
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit scans use the full 0..65535 range; scale by the nominal range, not the data maximum.
        top = 65535.0 if img.mode != "F" else max(float(arr.max()), 1e-6)
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr8)
        fixes.append("16bit->8bit")
    if img.mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        fixes.append("palette->rgb")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
        fixes.append("alpha->white")
    if img.mode == "CMYK":
        img = img.convert("RGB")
        fixes.append("cmyk->rgb")
    if img.mode != "RGB":
        fixes.append(f"{img.mode.lower()}->rgb")
        img = img.convert("RGB")
    return img, fixes


def check_image(data: bytes, p: ImageChecksParams) -> tuple[str | None, Image.Image | None, list[str]]:
    """Check one encoded image. Returns (reject reason or None, fixed image if changed, fixes applied)."""
    if not data:
        return "image_empty", None, []
    try:
        img = open_header(data)
    except ValueError:
        return "image_too_many_pixels", None, []
    except UnidentifiedImageError:
        return "image_unidentified", None, []
    except OSError:
        return "image_undecodable", None, []
    width, height = img.size
    if width * height > p.max_pixels:
        return "image_too_many_pixels", None, []
    if min(width, height) < p.min_side:
        return "image_too_small", None, []
    if max(width, height) / max(min(width, height), 1) > p.max_aspect_ratio:
        return "image_aspect_ratio", None, []
    needs_rotation = img.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1)
    needs_mode = img.mode != "RGB"
    if not p.decode and not (p.fix and (needs_rotation or needs_mode)):
        return None, None, []
    try:
        img.load()
    except OSError as exc:
        return ("image_truncated" if "truncated" in str(exc) else "image_undecodable"), None, []
    except Exception:  # noqa: BLE001 - any decoder failure (SyntaxError, ValueError) is a bad record
        return "image_undecodable", None, []
    if not p.fix or not (needs_rotation or needs_mode):
        return None, None, []
    fixes: list[str] = []
    if needs_rotation:
        img = ImageOps.exif_transpose(img)
        fixes.append("exif_rotate")
    img, mode_fixes = to_rgb(img)
    return None, img, fixes + mode_fixes


def encode_png(img: Image.Image) -> bytes:
    """Lossless re-encoding of a fixed image."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@register_step("image_checks")
class ImageChecks(Filter):
    """Reject unreadable or out-of-bounds images; replace convertible ones by fixed RGB PNG bytes."""

    Params = ImageChecksParams

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        p: ImageChecksParams = self.params  # type: ignore[assignment]
        if not record.images:
            return (False, "no_image") if p.require_image else True
        new_images = list(record.images)
        all_fixes: list[str] = []
        for i, ref in enumerate(record.images):
            try:
                data = read_image_bytes(ref)
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                return False, "image_missing"
            reason, fixed, fixes = check_image(data, p)
            if reason is not None:
                return False, reason
            if fixed is not None:
                new_images[i] = encode_png(fixed)
                all_fixes.extend(fixes)
        if all_fixes:
            record.images = new_images
            record.metadata = {**record.metadata, "image_fixes": all_fixes}
            for fix in all_fixes:
                self.stats[f"fixed:{fix}"] += 1
        return True
