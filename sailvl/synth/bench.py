"""Held-out benchmarks written as VLMEvalKit TSV files (MCQ, yes/no, short-answer VQA, OCR)."""

from __future__ import annotations

import base64
import csv
import random
from collections import Counter
from pathlib import Path

from sailvl.synth.formats import LETTERS, mcq_options
from sailvl.synth.qa import QA, TASK_KIND, make_qa
from sailvl.synth.render import png_bytes, render_scene, sample_scene
from sailvl.synth.scenes import DEFAULT_SCENES, SceneOptions
from sailvl.synth.yesno import yesno_qa

MCQ_COLUMNS = ["index", "image", "question", "hint", "A", "B", "C", "D", "answer", "category"]
QA_COLUMNS = ["index", "image", "question", "answer", "category"]
# Benchmark file stem -> (columns, tasks it may contain).
BENCHMARKS = {
    "synth_mcq": (MCQ_COLUMNS, ("colour", "shape", "count", "position", "digit", "ocr", "chart")),
    "synth_yesno": (QA_COLUMNS, ("colour", "shape", "count", "position", "digit", "ocr", "chart")),
    "synth_vqa": (QA_COLUMNS, ("colour", "shape", "count", "position", "digit", "ocr", "chart")),
    "synth_ocr": (QA_COLUMNS, ("ocr",)),
}
HINTS = {"chart": "The value of each bar is written above it.", "digit": "The digits are handwritten."}


def image_base64(img) -> str:
    """Base64 of the PNG encoding, as VLMEvalKit stores images in its TSV files."""
    return base64.b64encode(png_bytes(img)).decode("ascii")


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Tab-separated, header first, `\\n` line ends; fields are quoted only when needed (csv module rules)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _bench_item(
    name: str, task: str, i: int, seed: int, size: int, want_yes: bool, scene_options: SceneOptions
):
    """(scene image, QA, options or None) for item `i`; retries scenes until the task's question fits."""
    for attempt in range(50):
        rng = random.Random(f"sailvl-synth/{seed}/bench/{name}/{i}/{attempt}")
        needs_pair = task == "position" and name == "synth_yesno"
        scene = sample_scene(
            rng, TASK_KIND[task], digit_split="test", at_least_two=needs_pair, options=scene_options
        )
        qa: QA | None = (
            yesno_qa(scene, task, want_yes, rng) if name == "synth_yesno" else make_qa(scene, task, rng)
        )
        if qa is None:
            continue
        options = mcq_options(qa, rng) if name == "synth_mcq" else None
        if name == "synth_mcq" and options is None:
            continue
        return render_scene(scene, size), qa, options
    raise RuntimeError(f"could not build a {task} item for {name}")  # a bug in the builders, not user input


def build_benchmark(
    name: str, tasks: list[str], n: int, seed: int, size: int, scene_options: SceneOptions = DEFAULT_SCENES
) -> tuple[list[str], list[dict]]:
    """Rows of one benchmark: `n` items cycling through its tasks so categories are balanced.

    Images come from their own random stream (`bench`) and from the held-out digit split."""
    columns, allowed = BENCHMARKS[name]
    bench_tasks = [t for t in allowed if t in tasks]
    rows = []
    for i in range(n if bench_tasks else 0):
        task = bench_tasks[i % len(bench_tasks)]
        want_yes = (i // len(bench_tasks)) % 2 == 0
        img, qa, options = _bench_item(name, task, i, seed, size, want_yes, scene_options)
        row = {"index": i, "image": image_base64(img), "question": qa.question, "category": task}
        if options is not None:
            row.update({LETTERS[k]: opt for k, opt in enumerate(options)})
            row.update(answer=LETTERS[options.index(qa.answer)], hint=HINTS.get(task, ""))
        else:
            row["answer"] = qa.answer
        rows.append(row)
    return columns, rows


def write_benchmarks(
    out_dir: Path,
    tasks: list[str],
    n: int,
    seed: int,
    size: int,
    scene_options: SceneOptions = DEFAULT_SCENES,
) -> dict[str, Counter]:
    """Write `out_dir/<name>.tsv` for every benchmark with at least one enabled task; category counts per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in BENCHMARKS:
        columns, rows = build_benchmark(name, tasks, n, seed, size, scene_options)
        if rows:
            write_tsv(out_dir / f"{name}.tsv", columns, rows)
            counts[name] = Counter(row["category"] for row in rows)
    return counts
