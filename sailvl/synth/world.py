"""`generate_world`: render a synthetic world and write its images, JSONL files, benchmarks and README."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.synth.bench import write_benchmarks
from sailvl.synth.captions import alt_text, caption_sentences
from sailvl.synth.formats import WEAK_QUESTIONS, complexity_score, format_for_sft, relevance_score
from sailvl.synth.judge import judge_pairs
from sailvl.synth.qa import QA, TASK_KIND, TASKS, make_qa
from sailvl.synth.readme import write_readme
from sailvl.synth.render import png_bytes, render_scene, sample_scene
from sailvl.synth.scenes import DEFAULT_SHAPES, ShapeOptions
from sailvl.synth.yesno import yesno_qa

# Relative frequency of each scene kind when all its tasks are enabled.
KIND_WEIGHTS = {"shapes": 4.0, "digits": 1.5, "text": 1.5, "chart": 1.0}
ALT_PROMPTS = (
    "Write a short caption for the image.",
    "Give a brief caption.",
    "What is this image? Be brief.",
)
DETAILED_PROMPTS = (
    "Describe the image in detail.",
    "Write a detailed description of this image.",
    "Describe everything you see in the image.",
)
WEAK_PROB = 0.03
OUTPUT_FILES = ("pretrain.jsonl", "sft.jsonl", "judge.jsonl", "README.md", "world.json")


def parse_tasks(tasks: list[str] | str | None) -> list[str]:
    """Validate a task list (or comma-separated string); None means every task, in TASKS order."""
    if tasks is None:
        return list(TASKS)
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise SailvlError(
            f"unknown synth task(s) {unknown or tasks}; expected a subset of {', '.join(TASKS)}"
        )
    return [t for t in TASKS if t in tasks]


def parse_kind_weights(spec: dict[str, float] | str | None) -> dict[str, float]:
    """KIND_WEIGHTS updated by `spec` ({"digits": 3} or "digits=3,shapes=4"); names and values are checked."""
    weights = dict(KIND_WEIGHTS)
    if not spec:
        return weights
    if isinstance(spec, str):
        pairs = [item.partition("=") for item in spec.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise SailvlError(f"--kind-weights must look like digits=3,shapes=4, got {spec!r}")
        spec = {k.strip(): v.strip() for k, _, v in pairs}
    for kind, value in spec.items():
        if kind not in KIND_WEIGHTS:
            raise SailvlError(
                f"unknown scene kind {kind!r} in kind weights; expected {', '.join(KIND_WEIGHTS)}"
            )
        try:
            weights[kind] = float(value)
        except ValueError:
            raise SailvlError(f"kind weight of {kind!r} must be a number, got {value!r}") from None
        if weights[kind] <= 0:
            raise SailvlError(f"kind weight of {kind!r} must be positive, got {value!r}")
    return weights


def scene_kinds(tasks: list[str], weights: dict[str, float] | None = None) -> dict[str, float]:
    """Scene kinds the tasks need, with sampling weights; a caption-only world uses every kind."""
    weights = KIND_WEIGHTS if weights is None else weights
    kinds = {TASK_KIND[t] for t in tasks if t in TASK_KIND} or set(weights)
    return {k: w for k, w in weights.items() if k in kinds}


def _conversation(prompt: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": "<image>\n" + prompt}, {"from": "gpt", "value": answer}]


def _sft_record(qa: QA, style: str, weak: bool, rng: random.Random) -> dict:
    prompt, answer, used = format_for_sft(qa, style, rng)
    return {
        "conversations": _conversation(prompt, answer),
        "task": qa.task,
        "difficulty": qa.difficulty,
        "complexity": complexity_score(qa.question, qa.answer, qa.steps),
        "relevance": relevance_score(weak, rng),
        "weak_relevance": weak,
        "format": used,
    }


def image_records(
    i: int,
    seed: int,
    size: int,
    tasks: list[str],
    kinds: dict[str, float],
    shapes: ShapeOptions = DEFAULT_SHAPES,
):
    """Render image `i` and build its records; returns (png bytes, scene kind, pretrain, sft, judge lists)."""
    rng = random.Random(f"sailvl-synth/{seed}/train/{i}")
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    scene = sample_scene(rng, kind, digit_split="train", shapes=shapes)
    png = png_bytes(render_scene(scene, size))
    caption_seed = rng.getrandbits(32)
    sentences = caption_sentences(scene, random.Random(caption_seed))
    detailed = " ".join(sentences)
    alt, alt_wrong = alt_text(scene, rng)
    pretrain = [
        {"conversations": _conversation(rng.choice(ALT_PROMPTS), alt), "caption_type": "alt",
         "alt_wrong_attribute": alt_wrong},
        {"conversations": _conversation(rng.choice(DETAILED_PROMPTS), detailed), "caption_type": "detailed",
         "alt_text": alt},
    ]  # fmt: skip

    own_tasks = [t for t in tasks if TASK_KIND.get(t) == kind]
    rng.shuffle(own_tasks)
    sft = []
    for task in own_tasks[:3]:
        qa = make_qa(scene, task, rng)
        if qa is not None:
            style = rng.choices(["short", "mcq", "open"], weights=[0.55, 0.3, 0.15])[0]
            sft.append(_sft_record(qa, style, False, rng))
    if own_tasks and rng.random() < 0.3:
        qa = yesno_qa(scene, rng.choice(own_tasks), rng.random() < 0.5, rng)
        if qa is not None:
            sft.append(_sft_record(qa, "yesno", False, rng))
    if "caption" in tasks and (not own_tasks or rng.random() < 0.3):
        qa = QA("caption", rng.choice(DETAILED_PROMPTS), detailed, 2, len(sentences))
        sft.append(_sft_record(qa, "open", False, rng))
    if rng.random() < WEAK_PROB:
        question, answer = rng.choice(WEAK_QUESTIONS)
        sft.append(_sft_record(QA("general", question, answer, 1, 1), "short", True, rng))

    judge = judge_pairs(scene, caption_seed, alt, alt_wrong, rng)
    return png, kind, pretrain, sft, judge


def _prepare_out_dir(out: Path) -> None:
    """Create `out`, or clear the outputs of an earlier world there; refuse a non-empty foreign directory."""
    if out.exists() and any(out.iterdir()):
        if not (out / "world.json").exists():
            raise SailvlError(
                f"{out} is not empty and holds no synthetic world; choose an empty or new --out"
            )
        for sub, pattern in (("images", "*.png"), ("bench", "*.tsv")):
            for path in (out / sub).glob(pattern):
                path.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n")


def generate_world(
    out_dir: str | Path,
    n: int,
    seed: int,
    size: int = 112,
    tasks: list[str] | str | None = None,
    n_bench: int | None = None,
    max_objects: int = 5,
    object_scale: float = 1.0,
    kind_weights: dict[str, float] | str | None = None,
) -> dict:
    """Write a synthetic world of `n` training images of `size` x `size` pixels into `out_dir`.

    Files: images/*.png, pretrain.jsonl, sft.jsonl, judge.jsonl, bench/*.tsv (`n_bench` items each, default
    n // 5 clipped to 40..500), README.md and world.json. Same arguments give the same bytes.
    `max_objects` (1-5) caps the shapes per scene and `object_scale` (1-2) enlarges them: one large shape
    per image (max_objects=1, object_scale=2) is an easy world a tiny model learns in a few hundred steps.
    `kind_weights` changes how often each scene kind is drawn (default KIND_WEIGHTS), e.g. "digits=4".
    Returns the summary stored in world.json (arguments and record counts)."""
    tasks = parse_tasks(tasks)
    if n < 1:
        raise SailvlError(f"--n must be a positive number of images, got {n}")
    if not 1 <= max_objects <= 5 or (max_objects < 2 and "position" in tasks):
        raise SailvlError(f"max_objects must be 1-5 (at least 2 with the position task), got {max_objects}")
    if not 1.0 <= object_scale <= 2.0:
        raise SailvlError(f"object_scale must be between 1 and 2, got {object_scale}")
    shapes = ShapeOptions(max_objects, object_scale)
    kind_weights = parse_kind_weights(kind_weights)
    if size < 56:
        raise SailvlError(f"--size must be at least 56 pixels, got {size}")
    n_bench = min(500, max(40, n // 5)) if n_bench is None else n_bench
    out = Path(out_dir)
    _prepare_out_dir(out)
    kinds = scene_kinds(tasks, kind_weights)
    pretrain, sft, judge, kind_counts = [], [], [], Counter()
    for i in range(n):
        png, kind, pre, qas, judged = image_records(i, seed, size, tasks, kinds, shapes)
        kind_counts[kind] += 1
        image = f"images/{i:06d}.png"
        (out / image).write_bytes(png)
        for suffix, group, target in (("c", pre, pretrain), ("q", qas, sft), ("j", judged, judge)):
            for k, rec in enumerate(group):
                target.append({"id": f"{i:06d}-{suffix}{k}", "image": image, **rec})
    _write_jsonl(out / "pretrain.jsonl", pretrain)
    _write_jsonl(out / "sft.jsonl", sft)
    _write_jsonl(out / "judge.jsonl", judge)
    bench_counts = write_benchmarks(out / "bench", tasks, n_bench, seed, size, shapes)
    summary = {
        "seed": seed,
        "size": size,
        "tasks": tasks,
        "images": n,
        "max_objects": max_objects,
        "object_scale": object_scale,
        "kind_weights": {k: kind_weights[k] for k in kinds},
        "kinds": dict(sorted(kind_counts.items())),
        "pretrain": len(pretrain),
        "sft": len(sft),
        "sft_by_task": dict(sorted(Counter(r["task"] for r in sft).items())),
        "sft_by_difficulty": {str(k): v for k, v in sorted(Counter(r["difficulty"] for r in sft).items())},
        "judge": len(judge),
        "judge_aligned": sum(r["aligned"] == "yes" for r in judge),
        "bench": {name: dict(sorted(c.items())) for name, c in bench_counts.items()},
    }
    (out / "world.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_readme(out / "README.md", summary)
    return summary
