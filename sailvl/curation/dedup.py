"""Deduplication across shards and ranks: exact (content hash) and perceptual (pHash, Hamming threshold).

Dedup is a global step. The executor first runs a signature pass (the steps before the dedup step,
then `signature()` per record, written per shard), then `resolve_duplicates` decides once for the whole
job which records repeat an earlier one (order = input shard, then offset, so every executor and rank
count agree), and the main pass rejects those ids.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from sailvl.curation.image_checks import open_header, read_image_bytes
from sailvl.curation.records import caption_of
from sailvl.curation.step import Filter, StepParams, register_step

DUPLICATES_FILE = "duplicates.json"


class DedupParams(StepParams):
    method: Literal["exact", "phash"] = Field("exact", description="'exact' content hash or 'phash'.")
    threshold: int = Field(
        4, ge=0, le=32, description="phash: max Hamming distance (bits of 64) of a duplicate."
    )
    include_text: bool = Field(False, description="exact: hash the caption together with the image bytes.")


def exact_signature(record: Any, include_text: bool = False) -> str | None:
    """sha1 over the record's image bytes (and caption); None for a record with nothing to hash."""
    if not record.images and not include_text:
        return None
    h = hashlib.sha1()
    for ref in record.images:
        h.update(hashlib.sha1(read_image_bytes(ref)).digest())
    if include_text:
        h.update(caption_of(record).encode("utf-8"))
    return h.hexdigest()


def phash_int(data: bytes, fast: bool = True) -> int:
    """64-bit perceptual hash of encoded image bytes. `fast` lets JPEG decode at reduced size (DCT draft)."""
    import imagehash

    img = open_header(data)
    if fast:
        # pHash looks at a 32x32 grey thumbnail; decoding a JPEG at 1/2..1/8 scale changes nothing there.
        img.draft("L", (128, 128))
    return int(str(imagehash.phash(img)), 16)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


def _bands(value: int, n_bands: int) -> list[tuple[int, int]]:
    width = 64 // n_bands
    out = []
    for i in range(n_bands):
        lo = i * width
        hi = 64 if i == n_bands - 1 else lo + width
        out.append((i, (value >> lo) & ((1 << (hi - lo)) - 1)))
    return out


def resolve_phash(items: Iterable[tuple[str, int]], threshold: int) -> dict[str, str]:
    """Greedy near-duplicate resolution in the given order: id -> id of the earlier kept record.

    Pigeonhole banding: two 64-bit hashes within `threshold` bits agree exactly on at least one of
    `threshold + 1` bands, so only records sharing a band are compared (exact, not approximate).
    """
    n_bands = min(threshold + 1, 64)
    buckets: dict[tuple[int, int], list[tuple[int, str, int]]] = {}
    duplicates: dict[str, str] = {}
    n_kept = 0
    for rid, value in items:
        bands = _bands(value, n_bands)
        # The earliest kept match wins, as in the brute-force order, so results do not depend on banding.
        match = min(
            (
                entry
                for band in bands
                for entry in buckets.get(band, ())
                if hamming(value, entry[2]) <= threshold
            ),
            default=None,
        )
        if match is not None:
            duplicates[rid] = match[1]
            continue
        for band in bands:
            buckets.setdefault(band, []).append((n_kept, rid, value))
        n_kept += 1
    return duplicates


def resolve_phash_bruteforce(items: Iterable[tuple[str, int]], threshold: int) -> dict[str, str]:
    """Reference O(n^2) version of `resolve_phash` (tests and the bench baseline)."""
    kept: list[tuple[str, int]] = []
    duplicates: dict[str, str] = {}
    for rid, value in items:
        match = next((k for k, v in kept if hamming(value, v) <= threshold), None)
        if match is None:
            kept.append((rid, value))
        else:
            duplicates[rid] = match
    return duplicates


@register_step("dedup")
class Dedup(Filter):
    """Reject records whose image (exact bytes, or pHash within `threshold` bits) appeared earlier."""

    Params = DedupParams
    is_global = True

    def __init__(self, params: DedupParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.duplicates: dict[str, str] | None = None

    def signature(self, record: Any) -> str | None:
        """Hex signature of one record (None: never a duplicate), computed in the signature pass."""
        p: DedupParams = self.params  # type: ignore[assignment]
        try:
            if p.method == "exact":
                return exact_signature(record, p.include_text)
            if not record.images:
                return None
            return format(phash_int(read_image_bytes(record.images[0])), "016x")
        except (OSError, ValueError):
            # Unreadable images are image_checks' business; they never count as duplicates here.
            return None

    def resolve(self, signatures: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        """Duplicates among `(id, signature)` in job order: id -> id of the first occurrence."""
        p: DedupParams = self.params  # type: ignore[assignment]
        present = [(rid, sig) for rid, sig in signatures if sig is not None]
        if p.method == "phash":
            return resolve_phash(((rid, int(sig, 16)) for rid, sig in present), p.threshold)
        first: dict[str, str] = {}
        duplicates: dict[str, str] = {}
        for rid, sig in present:
            if sig in first:
                duplicates[rid] = first[sig]
            else:
                first[sig] = rid
        return duplicates

    def setup(self) -> None:
        if self.duplicates is None:
            state_dir = self.context.get("state_dir")
            if state_dir is None:
                raise RuntimeError(f"dedup step {self.name} ran before its signature pass was resolved")
            self.duplicates = json.loads((Path(state_dir) / DUPLICATES_FILE).read_text())

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        assert self.duplicates is not None
        if record.id in self.duplicates:
            return False, "exact_duplicate" if self.params.method == "exact" else "near_duplicate"
        return True


def phash_of_image(img: Any) -> int:
    """64-bit pHash of a decoded PIL image."""
    import imagehash

    return int(str(imagehash.phash(img)), 16)


def phash_bytes_full_decode(data: bytes) -> int:
    """pHash after a full-resolution decode (bench baseline for `phash_int(fast=True)`)."""
    from PIL import Image

    return phash_of_image(Image.open(io.BytesIO(data)))
