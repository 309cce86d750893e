"""`sailvl bench curate`: records/s of the cheap curation steps (image checks, pHash, dedup resolution),
each against a baseline measured in the same process on the same images."""

from __future__ import annotations

import io
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sailvl.curation.base import build_step
from sailvl.curation.dedup import phash_int, resolve_phash, resolve_phash_bruteforce
from sailvl.curation.image_checks import ImageChecksParams, check_image
from sailvl.curation.vlm import load_step_model, model_fns
from sailvl.data.processor import SailVLProcessor
from sailvl.data.readers import read_source
from sailvl.data.sample import Sample
from sailvl.model import build_model, save_model
from sailvl.synth import generate_world
from sailvl.synth.tiny_model import train_tokenizer, world_texts


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


# -- model steps ----------------------------------------------------------------------------------------
# Step configs timed by `bench_model_steps`: the batched path against the same step one record at a time.
MODEL_STEPS: dict[str, dict[str, Any]] = {
    "recaption": {"type": "recaption"},
    "judge_answer": {"type": "judge", "ita_method": "answer"},
    "judge_likelihood": {"type": "judge", "ita_method": "likelihood", "min_alignment": -1.5},
}


def bench_model_dir(root: Path, preset: str, n_images: int) -> Path:
    """A random-init model directory of `preset` with a tokenizer trained on a synthetic world under `root`."""
    generate_world(root / "world", n=n_images, seed=0)
    tokenizer = train_tokenizer(world_texts(root / "world"), vocab_size=600)
    model = build_model(preset, seed=0, tokenizer=tokenizer)
    processor = SailVLProcessor.for_model(tokenizer, model.config)
    out = save_model(model, root / "model")
    processor.save_pretrained(out)
    return out


def _recording(generate_fn, answers: list[str]):
    """`generate_fn` that also appends every answer it returns to `answers`."""

    def generate(requests):
        out = generate_fn(requests)
        answers.extend(out)
        return out

    return generate


def _tokens(texts: list[str], tokenizer) -> int:
    """Tokens of generated answers, re-tokenised from their text (special tokens were dropped in decoding)."""
    return sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in texts if text)


def bench_model_steps(
    n_records: int = 32,
    batch_size: int = 16,
    max_new_tokens: int = 16,
    preset: str = "tiny",
    backend: str = "transformers",
    device: str = "auto",
    repeats: int = 1,
) -> dict[str, Any]:
    """Records/s of recaption and judge (answer and likelihood alignment) on a random-init `preset` model:
    the step at `batch_size` (each image tiled and encoded once for all its prompts) against the straightforward
    path, the same step one record at a time (`batch_size=1`: one `generate` call per record and question, every
    prompt re-encoding its image), on the same records, model and process; `vs_answer_judge_one_at_a_time` puts
    the likelihood judge against the answer judge's straightforward path. Untrained models never stop early, so
    every record generates `max_new_tokens` tokens (recaption) or the judge's 8. With `repeats` > 1 both paths
    are timed that many times, interleaved: the medians are reported, and the speedup's min / max over repeats."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = bench_model_dir(Path(tmp), preset, max(n_records // 2, 1))
        world = Path(tmp) / "world"
        records = list(read_source("jsonl", world / "pretrain.jsonl", image_root=str(world)))[:n_records]
        common = {"model": str(model_dir), "backend": backend, "device": device}
        model, processor = load_step_model(build_step({"type": "recaption", **common}).params)  # once for all
        results: dict[str, Any] = {}
        for name, spec in MODEL_STEPS.items():
            rates: dict[int, list[float]] = {batch_size: [], 1: []}
            token_rates: list[float] = []  # recaption: generated tokens/s of the batched path
            for _ in range(repeats):
                for size in (batch_size, 1):
                    step = build_step({**spec, **common, "batch_size": size, "reuse_image_embeddings": size > 1,
                                       "max_new_tokens": max_new_tokens if spec["type"] == "recaption" else 8})  # fmt: skip
                    generate_fn, step.score_fn = model_fns(model, processor, step.params)
                    answers: list[str] = []
                    step.generate_fn = _recording(generate_fn, answers)
                    step.set_sink(None)
                    list(step.run([Sample.from_dict(r.to_dict()) for r in records[:2]]))  # warm-up, not timed
                    fresh = [Sample.from_dict(r.to_dict()) for r in records]
                    start = time.perf_counter()
                    answers.clear()
                    list(step.run(fresh))
                    seconds = time.perf_counter() - start
                    rates[size].append(len(records) / seconds)
                    if spec["type"] == "recaption" and size == batch_size:
                        token_rates.append(_tokens(answers, processor.tokenizer) / seconds)
            speedups = [b / s for b, s in zip(rates[batch_size], rates[1], strict=True)]
            results[name] = {"records_per_s": round(statistics.median(rates[batch_size]), 2), "batch_size": batch_size,
                             "baseline": "the same step one record at a time (batch_size=1), every prompt "
                                         "re-encoding its image (reuse_image_embeddings off)",
                             "baseline_records_per_s": round(statistics.median(rates[1]), 2),
                             "speedup": round(statistics.median(speedups), 2),
                             "speedup_min_max": [round(min(speedups), 2), round(max(speedups), 2)],
                             "repeats": repeats}  # fmt: skip
            if token_rates:
                results[name]["generated_tokens_per_s"] = round(statistics.median(token_rates), 1)
    answer_baseline = results["judge_answer"]["baseline_records_per_s"]
    results["judge_likelihood"]["vs_answer_judge_one_at_a_time"] = round(
        results["judge_likelihood"]["records_per_s"] / answer_baseline, 2
    )
    import torch

    return {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },  # fmt: skip
        "model": {
            "preset": preset,
            "backend": backend,
            "records": len(records),
            "max_new_tokens": max_new_tokens,
        },  # fmt: skip
        "steps": results,
    }
