"""`sailvl bench data`: loader throughput and packing efficiency vs pad-to-longest, and tiler speed vs plain PIL."""

from __future__ import annotations

import io
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sailvl.bench.balance import rank_balance
from sailvl.bench.mix import realistic_processor, write_realistic_mix
from sailvl.config.constants import IMAGENET_MEAN, IMAGENET_STD
from sailvl.data.config import DataConfig
from sailvl.data.images import load_image
from sailvl.data.loader import build_loader
from sailvl.data.processor import SailVLProcessor
from sailvl.data.template import TextCache
from sailvl.data.tiling import choose_grid
from sailvl.data.tokenizer import train_bpe_tokenizer
from sailvl.errors import SailvlError

# What the H200 consumed in `sailvl bench train --preset sailvl-2b` (flex_attention; BENCHMARKS.md), samples/s.
GPU_SAMPLES_PER_S = 55.1

_WORDS = (
    "the a red green blue circle square star left right top bottom is on of and with near large small".split()
)


def _jpeg(rng: random.Random, width: int, height: int) -> bytes:
    pixels = np.random.default_rng(rng.randrange(2**31)).integers(
        0, 255, (height // 16, width // 16, 3), dtype=np.uint8
    )
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_synthetic_mix(directory: str | Path, n: int = 240, seed: int = 0) -> DataConfig:
    """Write a two-source synthetic mix (SFT-like QA with 0-2 JPEGs; captions with long-tailed lengths).

    Returns a DataConfig for the tiny model (112 px tiles, 1024-token packs) reading it.
    """
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    images = [
        _jpeg(rng, rng.choice([320, 640, 1024, 1600]), rng.choice([240, 480, 768, 1200])) for _ in range(24)
    ]
    for k, data in enumerate(images):
        (directory / "images" / f"{k}.jpg").write_bytes(data)
    for name, count in (("sft", n), ("captions", n // 2)):
        with open(directory / f"{name}.jsonl", "w") as fh:
            for i in range(count):
                if name == "sft":
                    n_images, words = rng.choice([0, 1, 1, 1, 2]), max(1, int(rng.lognormvariate(3.0, 0.8)))
                else:
                    n_images, words = 1, min(600, int(8 * rng.paretovariate(1.3)))
                refs = [f"images/{rng.randrange(len(images))}.jpg" for _ in range(n_images)]
                question = "<image>\n" * n_images + " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))
                record = {
                    "id": f"{name}-{i}",
                    "image": refs,
                    "conversations": [
                        {"from": "human", "value": question},
                        {"from": "gpt", "value": " ".join(rng.choices(_WORDS, k=words))},
                    ],
                }
                fh.write(json.dumps(record) + "\n")
    return DataConfig(
        sources=[
            {"path": str(directory / "sft.jsonl"), "image_root": str(directory), "weight": 0.7},
            {
                "path": str(directory / "captions.jsonl"),
                "image_root": str(directory),
                "weight": 0.3,
                "max_tiles": 2,
            },
        ],
        max_tokens=1024,
        max_tiles_per_pack=32,
        pack_buffer=64,
        num_workers=0,
    )


def tiny_bench_processor():
    """A processor with a locally trained BPE tokenizer and 112 px tiles (16 tokens per tile, max 4 tiles)."""
    tokenizer = train_bpe_tokenizer([" ".join(_WORDS)] * 4 + ["You are a helpful assistant."], vocab_size=400)
    return SailVLProcessor(tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=4)


def _run_loader(config: DataConfig, processor, batches: int) -> tuple[dict, list[list[tuple[int, int]]]]:
    """Time `batches` batches after the first; returns the figures and each timed row's (tokens, tiles) samples."""
    loader = build_loader(config, processor, seed=0)
    stream = iter(loader)
    # Time from every worker's first batch on: a packer emits its first pack only once its buffer is full.
    for _ in range(max(config.num_workers, 1)):
        next(stream)
    samples = real = slots = tiles = 0
    rows: list[list[tuple[int, int]]] = []
    start = time.perf_counter()
    for batch in itertools.islice(stream, batches):
        samples += len(batch["sample_ids"])
        real += batch["num_real_tokens"]
        slots += batch["input_ids"].numel()
        tiles += sum(batch["sample_tiles"])
        rows.append(list(zip(batch["sample_lengths"], batch["sample_tiles"], strict=True)))
    seconds = time.perf_counter() - start
    workers = max(config.num_workers, 1)
    report = {
        "batches": batches,
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 2),
        "tokens_per_s": round(real / seconds, 1),
        "tiles_per_s": round(tiles / seconds, 1),
        "samples_per_s_per_process": round(samples / seconds / workers, 2),
        "padding_efficiency": round(real / slots, 4),
        "bad_records": loader.bad_records().summary(),
    }
    return report, rows


def _pil_tiles(data: bytes, tile: int, max_tiles: int) -> np.ndarray:
    """The straightforward tiler: decode at full size, resize to the grid, crop, thumbnail, normalise."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    cols, rows = choose_grid(image.width, image.height, tile, 1, max_tiles)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
        for r in range(rows)
        for c in range(cols)
    ]
    if len(tiles) > 1:
        tiles.append(image.resize((tile, tile), Image.Resampling.BICUBIC))
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    return np.stack([((np.asarray(t, np.float32) / 255.0 - mean) / std).transpose(2, 0, 1) for t in tiles])


def _images_per_s(fn, images: list[bytes], min_seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while True:
        for data in images:
            fn(data)
            count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return count / elapsed


def bench_tiler(processor, images: list[bytes], max_tiles: int, min_seconds: float = 2.0) -> dict:
    """Images/s of load_image (JPEG draft) + processor.tile_image vs `_pil_tiles`, same grid rule."""
    tile = processor.tile_size

    def ours(data: bytes):
        return processor.tile_image(load_image(data, max_side=tile * max_tiles), max_tiles)

    same = ours(images[0]).shape == _pil_tiles(images[0], tile, max_tiles).shape
    fast = _images_per_s(ours, images, min_seconds)
    slow = _images_per_s(lambda d: _pil_tiles(d, tile, max_tiles), images, min_seconds)
    return {
        "max_tiles": max_tiles,
        "same_tile_count": same,
        "sailvl_images_per_s": round(fast, 1),
        "pil_baseline_images_per_s": round(slow, 1),
        "speedup": round(fast / slow, 2),
    }


def bench_text_cache(config: DataConfig, processor, batches: int) -> dict:
    """Loader samples/s over the same stream without the processor's text cache and with it warm (after one
    pass, as in a run's second epoch): rendering and tokenising repeated conversations is what it saves."""
    saved = processor.text_cache
    try:
        processor.text_cache = None
        uncached, _ = _run_loader(config, processor, batches)
        processor.text_cache = cache = TextCache()
        _run_loader(config, processor, batches)  # the first pass fills the cache
        hits, misses = cache.hits, cache.misses
        warm, _ = _run_loader(config, processor, batches)
        hits, misses = cache.hits - hits, cache.misses - misses
    finally:
        processor.text_cache = saved
    return {
        "uncached_samples_per_s": uncached["samples_per_s"],
        "warm_cache_samples_per_s": warm["samples_per_s"],
        "speedup": round(warm["samples_per_s"] / uncached["samples_per_s"], 3),
        "hit_rate": round(hits / max(1, hits + misses), 4),
        "cached_conversations": len(cache),
        "cached_tokens": cache.tokens,
    }


def bench_data(
    config: DataConfig | None = None,
    processor=None,
    batches: int = 20,
    tiler_seconds: float = 2.0,
    mix: str = "realistic",
    workers: int | None = None,
    ranks: int | None = None,
) -> dict:
    """Run the packed loader and a pad-to-longest loader over the same stream, then the tiler benchmark.

    Throughput is timed after each loader's first batch (steady state, packing buffer full); efficiency is
    non-pad tokens / all token slots of the timed batches. With no config a mix is written to a temporary
    directory: `realistic` (`sailvl.bench.mix`: photo JPEGs, 448 px x 12 tiles, 8192-token packs, SFT-like
    lengths) or `tiny` (112 px tiles, 1024-token packs; quick). `workers` overrides the loader's processes.
    The baseline's batch size is the mean number of samples per packed batch, so both runs see the same data.
    `text_cache`: the packed loader without the processor's text cache vs with it warm (`bench_text_cache`).
    With `ranks`, the timed packs are dealt to that many ranks per step, as the loader does, and re-packed by
    `balance_packs`; the report gives the rank imbalance (max / mean per-rank cost) of both.
    """
    if mix not in ("realistic", "tiny"):
        raise SailvlError(f"--mix must be realistic or tiny, got {mix!r}")
    source = "config" if config is not None else mix
    if processor is None:
        processor = realistic_processor() if mix == "realistic" and config is None else tiny_bench_processor()
    with tempfile.TemporaryDirectory() as tmp:
        if config is None:
            config = write_realistic_mix(tmp) if mix == "realistic" else write_synthetic_mix(tmp)
        if workers is not None:
            config = config.model_copy(update={"num_workers": workers})
        # Each loader run starts with a cold text cache, so neither is timed on the other's encodings.
        processor.text_cache = TextCache()
        packed, rows = _run_loader(config, processor, batches)
        per_batch = max(1, round(packed["samples"] / batches))
        baseline_config = config.model_copy(update={"packing": False, "batch_size": per_batch})
        processor.text_cache = TextCache()
        baseline, _ = _run_loader(baseline_config, processor, max(1, packed["samples"] // per_batch))
        text_cache = bench_text_cache(config, processor, batches)
        root = Path(tmp) / "images"
        images = [p.read_bytes() for p in sorted(root.glob("*.jpg"))] if root.is_dir() else []
        if not images:
            rng = random.Random(0)
            images = [_jpeg(rng, 1024, 768), _jpeg(rng, 1600, 1200), _jpeg(rng, 640, 480)]
        tiler = bench_tiler(processor, images, processor.max_tiles, tiler_seconds)
    result = {
        "mix": source,
        "max_tokens": config.max_tokens,
        "tile_size": processor.tile_size,
        "max_tiles": processor.max_tiles,
        "num_workers": config.num_workers,
        "sources": [s.display_name for s in config.sources],
        "packed": packed,
        "pad_to_longest": baseline,
        "gpu_consumed_samples_per_s": GPU_SAMPLES_PER_S,
        "loader_over_gpu": round(packed["samples_per_s"] / GPU_SAMPLES_PER_S, 3),
        "tiler": tiler,
        "text_cache": text_cache,
    }
    if ranks is not None:
        result["ranks"] = rank_balance(rows, ranks, config.max_tokens, config.max_tiles_per_pack)
    return result
