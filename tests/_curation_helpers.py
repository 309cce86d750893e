"""Fixtures for the curation tests: small image corpora written as JSONL, pipeline configs, a crash step."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sailvl.curation.base import BatchStep, Filter, StepParams, register_step
from sailvl.curation.config import PipelineConfig
from sailvl.curation.records import caption_of, with_caption


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def random_image(seed: int, size: int = 64) -> Image.Image:
    """A blocky random RGB image (distinct pHash per seed)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.NEAREST)


CAPTIONS = [
    "a red circle on the left of a blue square",
    "two green triangles above a yellow star in the middle",
    "a large purple square next to a small orange circle",
    "three blue circles in a row on a white background",
]


def write_corpus(root: Path, n: int, dup_every: int = 0, bad_every: int = 0) -> tuple[Path, list[str]]:
    """`root/data.jsonl` with n image records; every `dup_every`-th repeats an earlier image under a new
    name, every `bad_every`-th has an empty caption. Returns (jsonl path, ids)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    ids, lines = [], []
    for i in range(n):
        name = f"img{i:04d}.png"
        source_seed = i - 1 if dup_every and i % dup_every == 0 and i > 0 else i
        (img_dir / name).write_bytes(png_bytes(random_image(source_seed)))
        caption = "" if bad_every and i % bad_every == 0 else CAPTIONS[i % len(CAPTIONS)] + f" number {i}"
        rid = f"r{i:04d}"
        ids.append(rid)
        lines.append(
            json.dumps(
                {
                    "id": rid,
                    "image": f"images/{name}",
                    "conversations": [
                        {"from": "human", "value": "<image>\nDescribe the image."},
                        {"from": "gpt", "value": caption},
                    ],
                }
            )
        )
    path = root / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, ids


def make_pipeline(data: Path, out: Path, steps: list[dict[str, Any]], **extra: Any) -> PipelineConfig:
    cfg: dict[str, Any] = {
        "input": {"paths": [str(data)], "records_per_shard": extra.pop("records_per_shard", 5)},
        "output_dir": str(out),
        "steps": steps,
    }
    cfg.update(extra)
    return PipelineConfig.model_validate(cfg)


CHEAP_STEPS = [
    {"type": "image_checks", "min_side": 16},
    {"type": "text_checks", "min_words": 3},
    {"type": "dedup", "method": "exact"},
    {"type": "dedup", "method": "phash", "threshold": 4, "name": "near_dedup"},
]


class CrashParams(StepParams):
    crash_at: str = "r0012"
    mode: str = "raise"  # "raise": an exception; "kill": SIGKILL of this process (no cleanup at all)
    while_exists: str | None = None  # crash only while this file exists (a fix that reaches other processes)


@register_step("test_crash")
class Crash(Filter):
    """Test-only step: dies when it sees `crash_at` (a run killed mid-shard)."""

    Params = CrashParams

    def keep(self, record: Any) -> bool:
        armed = self.params.while_exists is None or os.path.exists(self.params.while_exists)
        if record.id == self.params.crash_at and armed:
            if self.params.mode == "kill":
                os.kill(os.getpid(), 9)
            raise RuntimeError("injected failure")
        return True


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width x height pixels whose compressed size is tiny (~50 KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row * 500) for _ in range(height // 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@register_step("test_shout")
class Shout(BatchStep):
    """Test-only batched "model" step (uses_model=True, so Ray runs it as an actor pool): upper-cases
    captions, and rejects captions that mention 'star' (reason model_says_no)."""

    uses_model = True

    def process_batch(self, records: list[Any]) -> list[Any]:
        out: list[Any] = []
        for r in records:
            caption = caption_of(r)
            out.append("model_says_no" if "star" in caption else with_caption(r, caption.upper()))
        return out
