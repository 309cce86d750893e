"""Think-style samples (`think.jsonl`, `bench/synth_think.tsv`): add the two handwritten digits, answering with a
`<think>` trace that reads each digit before the sum, as SAIL-VL2-Thinking's LongCoT SFT data does at scale."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.data.thinking import THINK_END, THINK_START
from sailvl.synth.bench import QA_COLUMNS, image_base64, write_tsv
from sailvl.synth.digits import sample_digits_scene
from sailvl.synth.render import png_bytes, render_scene
from sailvl.synth.scenes import DEFAULT_SCENES, SceneOptions

THINK_FILE = "think.jsonl"
THINK_BENCH = "synth_think"
THINK_TASK = "digit_sum_think"
# Differs from sft.jsonl's direct "What is the sum of the two handwritten digits?", so a model trained on both
# can tell when to think. The benchmark asks the same words; its registry entry adds no suffix.
THINK_QUESTION = "Add the two handwritten digits. Think step by step."
# The benchmark also records each digit, so a reply's trace can be checked step by step (`trace_breakdown`).
THINK_COLUMNS = [*QA_COLUMNS, "left", "right"]
_TRACE = re.compile(
    r"^<think>The left digit is (\d)\. The right digit is (\d)\. (\d) \+ (\d) = (\d+)\.</think>(\d+)$"
)


def think_answer(left: int, right: int) -> str:
    """The assistant turn: a trace reading each digit, then the sum after `</think>` (about 30 tiny-BPE tokens)."""
    trace = f"The left digit is {left}. The right digit is {right}. {left} + {right} = {left + right}."
    return f"{THINK_START}{trace}{THINK_END}{left + right}"


def _two_digits(stream: str, split: str, options: SceneOptions):
    """(scene, left digit, right digit) drawn from its own random stream and the given digit split."""
    scene = sample_digits_scene(random.Random(stream), split, min_digits=2, jitter=options.digit_jitter)
    left, right = scene.digits  # sample_digits_scene puts the left digit first
    return scene, left.value, right.value


def think_records(
    out: Path, n: int, seed: int, size: int, options: SceneOptions = DEFAULT_SCENES
) -> list[dict]:
    """Render `n` two-digit images (training digits) into `out/images/think-*.png`; one record per image."""
    records = []
    for i in range(n):
        scene, left, right = _two_digits(f"sailvl-synth/{seed}/think/{i}", "train", options)
        image = f"images/think-{i:06d}.png"
        (out / image).write_bytes(png_bytes(render_scene(scene, size)))
        conversation = [
            {"from": "human", "value": f"{IMAGE_PLACEHOLDER}\n{THINK_QUESTION}"},
            {"from": "gpt", "value": think_answer(left, right)},
        ]
        records.append(
            {"id": f"think-{i:06d}", "image": image, "conversations": conversation, "task": THINK_TASK,
             "difficulty": 3, "format": "think"}
        )  # fmt: skip
    return records


def think_bench_rows(n: int, seed: int, size: int, options: SceneOptions = DEFAULT_SCENES) -> list[dict]:
    """`n` held-out items (test-split digits, their own random stream); the answer column is the bare sum."""
    rows = []
    for i in range(n):
        scene, left, right = _two_digits(f"sailvl-synth/{seed}/bench/{THINK_BENCH}/{i}", "test", options)
        image = image_base64(render_scene(scene, size))
        rows.append(
            {"index": i, "image": image, "question": THINK_QUESTION, "answer": str(left + right),
             "category": THINK_TASK, "left": left, "right": right}
        )  # fmt: skip
    return rows


def write_think(
    out: Path, n: int, n_bench: int, seed: int, size: int, options: SceneOptions = DEFAULT_SCENES
) -> Counter:
    """Write `out/think.jsonl` (`n` records) and `out/bench/synth_think.tsv` (`n_bench` items); returns the
    benchmark's category counts. `n` = 0 writes nothing and removes a think.jsonl left by an earlier world."""
    if n == 0:
        (out / THINK_FILE).unlink(missing_ok=True)
        return Counter()
    with open(out / THINK_FILE, "w", encoding="utf-8") as f:
        for record in think_records(out, n, seed, size, options):
            f.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    rows = think_bench_rows(n_bench, seed, size, options)
    (out / "bench").mkdir(parents=True, exist_ok=True)
    write_tsv(out / "bench" / f"{THINK_BENCH}.tsv", THINK_COLUMNS, rows)
    return Counter(row["category"] for row in rows)


def trace_breakdown(truths: list[tuple[int, int]], replies: list[str]) -> dict:
    """Shares (0-1) of `replies` to items with digits `truths` (left, right) that: follow the trace format
    exactly, read the left / right digit right, add their own digits right, answer their own trace's sum, and
    answer the true sum; `distinct` counts different replies (1: the model ignores the image)."""
    counts = Counter()
    for (left, right), reply in zip(truths, replies, strict=True):
        match = _TRACE.match(reply.strip())
        if match is None:
            continue
        read_left, read_right, a, b, total, answer = (int(g) for g in match.groups())
        counts["format"] += 1
        counts["left_digit"] += read_left == left
        counts["right_digit"] += read_right == right
        counts["arithmetic"] += (a, b) == (read_left, read_right) and total == a + b
        counts["answer_is_trace_sum"] += answer == total
        counts["answer_correct"] += answer == left + right
    n = max(1, len(replies))
    keys = ("format", "left_digit", "right_digit", "arithmetic", "answer_is_trace_sum", "answer_correct")
    return {"n": len(replies), **{k: round(counts[k] / n, 4) for k in keys}, "distinct": len(set(replies))}
