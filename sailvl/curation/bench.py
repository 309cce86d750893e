"""`sailvl bench curate`: records/s of the cheap curation steps (image checks, pHash, dedup resolution),
each against a baseline measured in the same process on the same images."""

from __future__ import annotations

import io
import os
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from sailvl.curation.dedup import phash_int, resolve_phash, resolve_phash_bruteforce
from sailvl.curation.image_checks import ImageChecksParams, check_image


def make_jpegs(n: int, width: int = 640, height: int = 480, seed: int = 0) -> list[bytes]:
    """`n` distinct web-sized JPEGs (smooth gradients + noise blocks, quality 90)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (height // 32, width // 32, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _rate(fn: Callable[[Any], Any], items: list[Any], repeats: int) -> float:
    """Best-of-`repeats` items/s of `fn` over `items`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def _full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.convert("RGB")


def bench_curation(n_images: int = 200, n_hashes: int = 3000, repeats: int = 3) -> dict[str, Any]:
    """Measure the cheap steps; every entry holds `records_per_s`, its `baseline` and the `speedup`."""
    images = make_jpegs(n_images)
    header = ImageChecksParams(decode=False)
    decode = ImageChecksParams(decode=True)
    full = _rate(_full_decode, images, repeats)
    results: dict[str, Any] = {}
    for name, rate in (
        ("image_checks_header_only", _rate(lambda d: check_image(d, header), images, repeats)),
        ("image_checks_with_decode", _rate(lambda d: check_image(d, decode), images, repeats)),
    ):
        results[name] = {"records_per_s": round(rate, 1), "baseline": "decode + convert to RGB per record (what a loader does)",
                         "baseline_records_per_s": round(full, 1), "speedup": round(rate / full, 2)}  # fmt: skip
    fast = _rate(lambda d: phash_int(d, fast=True), images, repeats)
    slow = _rate(lambda d: phash_int(d, fast=False), images, repeats)
    results["phash_signature"] = {"records_per_s": round(fast, 1), "baseline": "pHash after full-size decode",
                                  "baseline_records_per_s": round(slow, 1), "speedup": round(fast / slow, 2)}  # fmt: skip
    rng = random.Random(0)
    hashes = [(f"h{i}", rng.getrandbits(64)) for i in range(n_hashes)]
    banded = _rate(lambda items: resolve_phash(items, 4), [hashes], repeats) * n_hashes
    brute = _rate(lambda items: resolve_phash_bruteforce(items, 4), [hashes], 1) * n_hashes
    results["phash_dedup_resolve"] = {"records_per_s": round(banded, 1), "baseline": "all-pairs Hamming scan",
                                      "baseline_records_per_s": round(brute, 1), "speedup": round(banded / brute, 2),
                                      "records": n_hashes}  # fmt: skip
    import PIL

    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pillow": PIL.__version__},
        "images": {"count": n_images, "size": "640x480 JPEG q90"},
        "steps": results,
    }
