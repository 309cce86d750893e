"""`generate_world`: render a synthetic world and write its images, JSONL files, benchmarks and README."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sailvl.errors import SailvlError
from sailvl.synth.bench import write_benchmarks
from sailvl.synth.captions import alt_text, caption_sentences
from sailvl.synth.formats import (
    MCQ_ANSWERS,
    WEAK_QUESTIONS,
    YESNO_ANSWERS,
    complexity_score,
    format_for_sft,
    relevance_score,
)
from sailvl.synth.judge import judge_pairs
from sailvl.synth.preference import preference_records
from sailvl.synth.qa import QA, TASK_KIND, TASKS, make_qa
from sailvl.synth.readme import write_readme
from sailvl.synth.render import png_bytes, render_scene, sample_scene
from sailvl.synth.scenes import DEFAULT_SCENES, SceneOptions
from sailvl.synth.think import THINK_BENCH, write_think
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


# Answer styles of the task questions in sft.jsonl (yes/no questions come on top, see SftOptions).
STYLE_WEIGHTS = {"short": 0.55, "mcq": 0.3, "open": 0.15}


@dataclass(frozen=True)
class SftOptions:
    """How sft.jsonl asks its questions: `styles` weights the answer style of each task question; a yes/no
    question is added to an image with probability `yesno_prob`, and with `yesno_pairs` it comes twice, once
    true and once false, on the same image and attribute (POPE-style balanced pairs); `mcq_answer` is how MCQ
    answers are written (`sailvl.synth.formats.MCQ_ANSWERS`: the letter, or the option text then the letter), and
    `yesno_answer` how yes/no answers are (`YESNO_ANSWERS`: the word, or what the image shows then the word)."""

    styles: tuple[tuple[str, float], ...] = tuple(STYLE_WEIGHTS.items())
    yesno_prob: float = 0.3
    yesno_pairs: bool = False
    mcq_answer: str = "letter"
    yesno_answer: str = "word"


OUTPUT_FILES = ("pretrain.jsonl", "sft.jsonl", "judge.jsonl", "preference.jsonl", "README.md", "world.json")


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


def parse_weights(
    spec: dict[str, float] | str | None, defaults: dict[str, float], what: str, option: str
) -> dict[str, float]:
    """`defaults` updated by `spec` ({"digits": 3} or "digits=3,shapes=4"); names and values are checked.

    `what` names the keys in errors ("scene kind"), `option` the CLI flag. Each weight must be >= 0 and at
    least one positive."""
    weights = dict(defaults)
    if not spec:
        return weights
    if isinstance(spec, str):
        pairs = [item.partition("=") for item in spec.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            example = ",".join(f"{k}={v:g}" for k, v in list(defaults.items())[:2])
            raise SailvlError(f"{option} must look like {example}, got {spec!r}")
        spec = {k.strip(): v.strip() for k, _, v in pairs}
    for key, value in spec.items():
        if key not in defaults:
            raise SailvlError(f"unknown {what} {key!r} in {option}; expected {', '.join(defaults)}")
        try:
            weights[key] = float(value)
        except ValueError:
            raise SailvlError(f"{what} weight of {key!r} must be a number, got {value!r}") from None
        if weights[key] < 0:
            raise SailvlError(f"{what} weight of {key!r} must be zero or positive, got {value!r}")
    if not any(weights.values()):
        raise SailvlError(f"{option}: at least one {what} weight must be positive, got {spec!r}")
    return weights


def parse_kind_weights(spec: dict[str, float] | str | None) -> dict[str, float]:
    """KIND_WEIGHTS updated by `spec` ({"digits": 3} or "digits=3,shapes=4"); 0 leaves a kind out."""
    return parse_weights(spec, KIND_WEIGHTS, "scene kind", "--kind-weights")


def scene_kinds(tasks: list[str], weights: dict[str, float] | None = None) -> dict[str, float]:
    """Scene kinds the tasks need, with sampling weights; a caption-only world uses every kind."""
    weights = KIND_WEIGHTS if weights is None else weights
    kinds = {TASK_KIND[t] for t in tasks if t in TASK_KIND} or set(weights)
    return {k: w for k, w in weights.items() if k in kinds}


def _conversation(prompt: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": "<image>\n" + prompt}, {"from": "gpt", "value": answer}]


def _sft_record(
    qa: QA, style: str, weak: bool, rng: random.Random, mcq_mode: str = "letter", yesno_mode: str = "word"
) -> dict:
    prompt, answer, used = format_for_sft(qa, style, rng, mcq_mode, yesno_mode)
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
    options: SceneOptions = DEFAULT_SCENES,
    sft_options: SftOptions = SftOptions(),
):
    """Render image `i` and build its records; returns (png bytes, scene kind, pretrain, sft, judge lists)."""
    rng = random.Random(f"sailvl-synth/{seed}/train/{i}")
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    scene = sample_scene(rng, kind, digit_split="train", options=options)
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
            style = rng.choices([k for k, _ in sft_options.styles], [w for _, w in sft_options.styles])[0]
            sft.append(_sft_record(qa, style, False, rng, sft_options.mcq_answer))
    if own_tasks and rng.random() < sft_options.yesno_prob:
        task, want_yes = rng.choice(own_tasks), rng.random() < 0.5
        qa = yesno_qa(scene, task, want_yes, rng)
        if qa is not None:
            sft.append(_sft_record(qa, "yesno", False, rng, yesno_mode=sft_options.yesno_answer))
            other = yesno_qa(scene, task, not want_yes, rng) if sft_options.yesno_pairs else None
            if other is not None:
                sft.append(_sft_record(other, "yesno", False, rng, yesno_mode=sft_options.yesno_answer))
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
    digit_jitter: float = 1.0,
    style_weights: dict[str, float] | str | None = None,
    yesno_prob: float = 0.3,
    yesno_pairs: bool = False,
    think: int = 0,
    mcq_answer: str = "letter",
    yesno_answer: str = "word",
) -> dict:
    """Write a synthetic world of `n` training images of `size` x `size` pixels into `out_dir`.

    Files: images/*.png, pretrain.jsonl, sft.jsonl, judge.jsonl, preference.jsonl, bench/*.tsv (`n_bench` items each, default
    n // 5 clipped to 40..500), README.md and world.json. Same arguments give the same bytes.
    `max_objects` (1-5) caps the shapes per scene and `object_scale` (1-2) enlarges them: one large shape
    per image (max_objects=1, object_scale=2) is an easy world a tiny model learns in a few hundred steps.
    `kind_weights` changes how often each scene kind is drawn (default KIND_WEIGHTS), e.g. "digits=4".
    `digit_jitter` (0-1) scales the random placement and size of handwritten digits (0: fixed).
    `style_weights` changes the answer-style mix of sft.jsonl (default STYLE_WEIGHTS), e.g. "mcq=0.1";
    `yesno_prob` is the share of images with a yes/no SFT question, asked as a true/false pair with `yesno_pairs`.
    `mcq_answer` writes MCQ answers as the letter ("letter", VLMEvalKit's instruction) or as the option's text,
    then its letter ("text-letter": "square D"; the benchmarks stay letter-scored). `yesno_answer` writes yes/no
    answers as the word ("word") or as what the image shows of the asked attribute, then the word ("seen-word":
    "pink square No"; the benchmarks read the word).
    `think` > 0 adds think.jsonl, that many two-digit images answered with a `<think>` trace, and
    bench/synth_think.tsv (`sailvl.synth.think`).
    Returns the summary stored in world.json (arguments and record counts)."""
    tasks = parse_tasks(tasks)
    if n < 1:
        raise SailvlError(f"--n must be a positive number of images, got {n}")
    if not 1 <= max_objects <= 5 or (max_objects < 2 and "position" in tasks):
        raise SailvlError(f"max_objects must be 1-5 (at least 2 with the position task), got {max_objects}")
    if not 1.0 <= object_scale <= 2.0:
        raise SailvlError(f"object_scale must be between 1 and 2, got {object_scale}")
    if not 0.0 <= digit_jitter <= 1.0:
        raise SailvlError(f"digit_jitter must be between 0 and 1, got {digit_jitter}")
    if think < 0:
        raise SailvlError(f"--think must be zero or a positive number of images, got {think}")
    if mcq_answer not in MCQ_ANSWERS:
        raise SailvlError(f"mcq_answer must be one of {', '.join(MCQ_ANSWERS)}, got {mcq_answer!r}")
    if yesno_answer not in YESNO_ANSWERS:
        raise SailvlError(f"yesno_answer must be one of {', '.join(YESNO_ANSWERS)}, got {yesno_answer!r}")
    if not 0.0 <= yesno_prob <= 1.0:
        raise SailvlError(f"yesno_prob must be between 0 and 1, got {yesno_prob}")
    options = SceneOptions(max_objects, object_scale, digit_jitter)
    styles = parse_weights(style_weights, STYLE_WEIGHTS, "answer style", "--style-weights")
    sft_options = SftOptions(tuple(styles.items()), yesno_prob, yesno_pairs, mcq_answer, yesno_answer)
    kind_weights = parse_kind_weights(kind_weights)
    if size < 56:
        raise SailvlError(f"--size must be at least 56 pixels, got {size}")
    n_bench = min(500, max(40, n // 5)) if n_bench is None else n_bench
    out = Path(out_dir)
    _prepare_out_dir(out)
    kinds = scene_kinds(tasks, kind_weights)
    if not any(kinds.values()):
        raise SailvlError(f"--kind-weights leave no scene kind for the tasks {', '.join(tasks)}")
    pretrain, sft, judge, kind_counts = [], [], [], Counter()
    for i in range(n):
        png, kind, pre, qas, judged = image_records(i, seed, size, tasks, kinds, options, sft_options)
        kind_counts[kind] += 1
        image = f"images/{i:06d}.png"
        (out / image).write_bytes(png)
        for suffix, group, target in (("c", pre, pretrain), ("q", qas, sft), ("j", judged, judge)):
            for k, rec in enumerate(group):
                target.append({"id": f"{i:06d}-{suffix}{k}", "image": image, **rec})
    _write_jsonl(out / "pretrain.jsonl", pretrain)
    _write_jsonl(out / "sft.jsonl", sft)
    _write_jsonl(out / "judge.jsonl", judge)
    preference = preference_records(sft, seed)  # DPO pairs: the SFT answers against corrupted ones
    _write_jsonl(out / "preference.jsonl", preference)
    bench_counts = write_benchmarks(out / "bench", tasks, n_bench, seed, size, options)
    if think_bench := write_think(out, think, n_bench, seed, size, options):
        bench_counts[THINK_BENCH] = think_bench
    summary = {
        "seed": seed,
        "size": size,
        "tasks": tasks,
        "images": n,
        "max_objects": max_objects,
        "object_scale": object_scale,
        "digit_jitter": digit_jitter,
        "style_weights": styles,
        "yesno_prob": yesno_prob,
        "yesno_pairs": yesno_pairs,
        "mcq_answer": mcq_answer,
        "kind_weights": {k: kind_weights[k] for k in kinds},
        "kinds": dict(sorted(kind_counts.items())),
        "pretrain": len(pretrain),
        "sft": len(sft),
        "sft_by_task": dict(sorted(Counter(r["task"] for r in sft).items())),
        "sft_by_difficulty": {str(k): v for k, v in sorted(Counter(r["difficulty"] for r in sft).items())},
        "judge": len(judge),
        "preference": len(preference),
        "judge_aligned": sum(r["aligned"] == "yes" for r in judge),
        "think": think,
        "bench": {name: dict(sorted(c.items())) for name, c in bench_counts.items()},
    }
    if yesno_answer != "word":  # only when set, so earlier worlds' world.json stays byte-identical
        summary["yesno_answer"] = yesno_answer
    (out / "world.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_readme(out / "README.md", summary)
    return summary
