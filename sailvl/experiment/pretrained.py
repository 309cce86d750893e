"""A pretrained tiny base per seed (issue 27): the stand-in for the papers' Qwen2.5-Instruct LLM and pretrained ViT.

Experiments and fine-tuning runs that start from random weights cannot show what alignment or SFT data does to a
model that already speaks and sees. The base is built once per seed, from worlds no experiment trains or tests on
(seeds BASE_SEED + seed and GATE_SEED + seed), and cached in its directory:

- **LLM**, text-pretrained on the world's language: every SFT question of the base world answered from the image's
  detailed caption given in text ("Description: ..."), in all three benchmark styles (short / open answers, MCQ,
  yes/no); a world with the `caption` task also gives caption-writing records. MCQ answers name the option, then
  its letter ("square D"): a tiny LLM learns letters that way and stays at chance on letters alone (measured on
  these machines: text-only, 4000 steps). Trained on that corpus alone, the LLM learns the digit and shape
  lookups late, at a step that varies by seed, and the colour lookup never (MCQ and yes/no at chance on seeds 0
  and 1, up to 8000 steps; EXPERIMENTS.md "Colour lookups: what blocks them"). So it is trained in three stages
  (version 3), each a fresh run of the `tiny-text-lm` recipe from the previous stage's export:
  1. `colour_steps` on colour drills alone, the colour stated as a predicate ("The triangle is pink.";
     sailvl.experiment.drills): the colour lookup, which only arrives when it is learned alone;
  2. `text_steps` on the world's corpus with `mix_drills` drills of every task shuffled in;
  3. `settle_steps` more on the same records, with a fresh learning-rate schedule.
  An optional stage between 1 and 2, `lookup_steps` on drills of every task alone, brought the shape lookups on
  seeds 0 and 2 and passed seed 2's gate (EXPERIMENTS.md, session 35); FULL leaves it out until more seeds are run.
  It is gated on held-out text QA of the gate world, each benchmark task (colour, shape, digit) of each style on
  its own: the build fails below `BaseSize.gate`. Measured (EXPERIMENTS.md): the colour lookup arrives on every
  run; the digit and shape MCQ lookups on some (seed 1 passes FULL, seed 0 does not, also with weight decay 0.1
  and a longer last stage). The world's few image-irrelevant trivia questions (task `general`, 3% of images;
  curation's low-relevance rejects) are trained on but not gated.
- **ViT**, pretrained but never aligned to that LLM: trained jointly with a throw-away random decoder on the base
  world's captions and short answers (a captioning objective, as AIMv2 pretrains with a generative decoder),
  then its vision tower and projector are kept. The projector maps the ViT into the throw-away decoder's input
  space, not the text LLM's: aligning it to the LLM is the experiments' job. Kept, it is a far better start than
  a random projector (scripts/base_readout.py --captioning-projector: +37 / +13 points over a random ViT on the
  dev worlds, against +26 / +14 for the ViT alone with a random projector; EXPERIMENTS.md).

    sailvl experiment base --seed 1 --out runs/base/seed-1        # ~40 min on one core; rerun: reads the cache
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.data.processor import SailVLProcessor
from sailvl.errors import SailvlError
from sailvl.experiment.drills import drills
from sailvl.infer.generate import generate
from sailvl.infer.request import GenRequest
from sailvl.model import load_model, save_model
from sailvl.synth import generate_world
from sailvl.synth.formats import prompt_options
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

log = logging.getLogger(__name__)

BASE_SEED = 500_000  # the base world of seed S is BASE_SEED + S: never an experiment (0, 1, ...) or test seed
GATE_SEED = 700_000  # its held-out text QA (the gate) comes from world GATE_SEED + S
MANIFEST = "base.json"
# Bumped whenever what a base is made of changes (corpus, recipes, world): a cached base of another version is refused.
# 3: the text LLM's colour-drill stage and corpus + drills stages; 2: the base keeps its captioning run's projector
# (1: a random projector).
VERSION = 3
DESCRIBE = "Describe a picture of the synthetic world."
# The base world speaks the experiments' and the demo's language (sailvl.demo.pipeline.WORLD_FLAGS: one large
# shape or handwritten digit per image; colour, shape and digit questions) with the default answer-style mix, so
# a third of its questions are MCQ and yes/no.
BASE_WORLD = {"max_objects": 1, "object_scale": 2.0, "tasks": "colour,shape,digit", "kind_weights": "digits=4",
              "digit_jitter": 0.0}  # fmt: skip
GATE_STYLES = ("short", "mcq", "yesno")
GATE_TASKS = tuple(BASE_WORLD["tasks"].split(","))  # the benchmark tasks; `general` trivia is not gated


@dataclass(frozen=True)
class BaseSize:
    """Budgets of one base: world images (base and gate worlds), optimizer steps of the text LLM's stages (colour
    drills; corpus + drills; the same again) and of the ViT's captioning run, drill counts, and the gate: the
    least held-out text-QA accuracy per answer style (short, mcq, yesno), held by each benchmark task."""

    world_images: int
    gate_images: int
    text_steps: int
    vit_steps: int
    gate: dict[str, float] = field(default_factory=dict)
    gate_items: int = 300  # held-out text questions scored per style (at most)
    colour_steps: int = 0  # stage 1 (0: none)
    settle_steps: int = 0  # stage 3 (0: none)
    colour_drills: int = 30_000
    mix_drills: int = 8_000
    lookup_steps: int = 0  # between stages 1 and 2: drills of every task alone (0: none)
    lookup_drills: int = 30_000
    weight_decay: float = 0.0  # of stages 2 and 3 (the colour stage trains without)


QUICK = BaseSize(80, 30, 6, 4, {}, 20, colour_steps=3, settle_steps=2, colour_drills=40, mix_drills=30)
# Stage budgets on the gate worlds (EXPERIMENTS.md, "The staged base in the library"): seed 1 passes with 2000 +
# 3000 + 3000 steps (not with a 1000-step last stage); seed 0 misses the digit and shape MCQ lookups with them.
FULL = BaseSize(4000, 400, 3000, 5000, {"short": 0.8, "mcq": 0.5, "yesno": 0.75}, colour_steps=2000,
                settle_steps=3000)  # fmt: skip


def parse_gate(text: str) -> dict[str, float]:
    """A gate from `style=min,...` (styles short, mcq, yesno; minimum accuracy 0-1); "" is no gate."""
    gate = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        style, _, value = item.partition("=")
        try:
            minimum = float(value)
        except ValueError:
            minimum = -1.0
        if style not in GATE_STYLES or not 0.0 <= minimum <= 1.0:
            raise SailvlError(
                f"gate entry {item!r}: expected STYLE=MIN with STYLE one of {', '.join(GATE_STYLES)} and MIN in 0-1"
            )
        gate[style] = minimum
    return gate


def _detailed_lines(world: Path) -> Iterator[tuple[str, dict]]:
    """(JSON line, record) of each detailed-caption record of the world's pretrain.jsonl."""
    with open(world / "pretrain.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("caption_type") == "detailed":
                yield line, record


def mcq_text_letter(prompt: str, letter: str) -> str:
    """An MCQ answer as the option's text, then its letter ("square D")."""
    options = prompt_options(prompt)
    if letter not in options:
        raise SailvlError(f"MCQ answer {letter!r} names no option of the prompt {prompt!r}")
    return f"{options[letter]} {letter}"


def text_records(world: str | Path) -> Iterator[dict]:
    """The world's SFT questions as text-only samples: the image replaced by its detailed caption, tagged with
    `format` (short, open, mcq, yesno, caption); records without a caption (several images) are left out."""
    world = Path(world)
    captions = {r["image"]: r["conversations"][1]["value"] for _, r in _detailed_lines(world)}
    with open(world / "sft.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            caption = captions.get(record.get("image", ""))
            turns = record["conversations"]
            if caption is None or len(turns) != 2:
                continue
            question, answer = turns[0]["value"], turns[1]["value"]
            if record.get("task") == "caption":
                question, answer = DESCRIBE, caption
            else:
                question = question.replace(IMAGE_PLACEHOLDER, f"Description: {caption}", 1)
                if record.get("format") == "mcq" and answer in prompt_options(question):
                    answer = mcq_text_letter(question, answer)  # a letter-only world's answer
            yield {
                "id": f"text-{record['id']}",
                "task": record.get("task", ""),
                "format": "caption" if record.get("task") == "caption" else record.get("format", "short"),
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            }


def write_text_corpus(world: str | Path, out: str | Path) -> tuple[Path, int]:
    """text_records of `world` as JSONL at `out`; returns the path and the record count."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(out, "w", encoding="utf-8") as f:
        for record in text_records(world):
            f.write(json.dumps(record) + "\n")
            count += 1
    return out, count


def _gold_short_lines(world: Path) -> Iterator[tuple[str, dict]]:
    """(JSON line, record) of each alt-text record of the world's pretrain.jsonl whose attributes are all right
    (`alt_wrong_attribute` null): short captions in alt-text form that are true of their image."""
    with open(world / "pretrain.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("caption_type") == "alt" and record.get("alt_wrong_attribute") is None:
                yield line, record


def write_gold_captions(world: Path, out: Path, shuffle_seed: int | None = None, short: bool = False) -> Path:
    """The world's gold caption records (image paths relative to the world) as JSONL at `out`: the detailed
    captions, or with `short` the alt-texts that are right about their image (the world's true attributes in
    alt-text form).

    With `shuffle_seed`, every image gets another image's caption (a derangement: the negative control of a
    caption experiment, the same words with the pairing destroyed)."""
    lines = _gold_short_lines if short else _detailed_lines
    if shuffle_seed is None:
        with open(out, "w", encoding="utf-8") as w:
            w.writelines(line for line, _ in lines(world))
        return out
    records = [record for _, record in lines(world)]
    order = random.Random(shuffle_seed).sample(range(len(records)), len(records))
    # Each record in the shuffled order takes the caption of the next one: no record keeps its own.
    texts = {
        i: records[order[(k + 1) % len(order)]]["conversations"][1]["value"] for k, i in enumerate(order)
    }
    with open(out, "w", encoding="utf-8") as w:
        for i, record in enumerate(records):
            turns = [record["conversations"][0], {**record["conversations"][1], "value": texts[i]}]
            w.write(json.dumps({**record, "id": f"{record['id']}-shuffled", "conversations": turns}) + "\n")
    return out


def answer_correct(style: str, prediction: str, answer: str) -> bool:
    """Whether a text-QA prediction is right: MCQ by its last token (the letter), the rest exactly (case-folded)."""
    prediction = prediction.strip()
    if style == "mcq":
        return prediction.split()[-1:] == answer.split()[-1:]
    return prediction.lower().rstrip(".") == answer.lower()


def text_gate(model_dir: Path, records: list[dict], per_style: int) -> dict[str, dict]:
    """Greedy answers of the model to up to `per_style` held-out text questions of each style: accuracy and
    count per style, and per task within it (`per_task`; only the benchmark tasks GATE_TASKS are scored, not
    captions or trivia). A style's items are taken round-robin over the tasks, so each task gets its share."""
    by_task: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        style = "short" if record["format"] == "open" else record["format"]
        if style != "caption" and record.get("task") in GATE_TASKS:
            by_task.setdefault(style, {}).setdefault(record.get("task", ""), []).append(record)
    model, processor = load_model(model_dir), SailVLProcessor.from_pretrained(model_dir)
    result = {}
    for style, tasks in sorted(by_task.items()):
        items = _round_robin([tasks[t] for t in sorted(tasks)], per_style)
        requests = [GenRequest(question=r["conversations"][0]["value"]) for r in items]
        answers = generate(model, processor, requests, max_new_tokens=12, batch_size=32)
        right: dict[str, list[bool]] = {}
        for prediction, record in zip(answers, items, strict=True):
            ok = answer_correct(style, prediction, record["conversations"][1]["value"])
            right.setdefault(record.get("task", ""), []).append(ok)
        per_task = {t: {"accuracy": sum(v) / len(v), "items": len(v)} for t, v in sorted(right.items())}
        result[style] = {"accuracy": sum(map(sum, right.values())) / len(items), "items": len(items),
                         "per_task": per_task}  # fmt: skip
    return result


def _round_robin(groups: list[list[dict]], limit: int) -> list[dict]:
    """Up to `limit` items taken from `groups` in turn (each group in its own order)."""
    out: list[dict] = []
    for k in range(max(map(len, groups), default=0)):
        out.extend(group[k] for group in groups if k < len(group))
    return out[:limit]


def gate_misses(gate: dict[str, dict], minimum: dict[str, float]) -> dict[str, float]:
    """The scores under the gate: "style" (all tasks) or "style/task" -> accuracy. Every task of a style must
    reach the style's minimum, not only their mean: a base that answers colour MCQ at chance while shape and
    digit MCQ pass would otherwise get through."""
    misses = {}
    for style, scores in gate.items():
        least = minimum.get(style, 0.0)
        if scores["accuracy"] < least:
            misses[style] = scores["accuracy"]
        for task, per in scores.get("per_task", {}).items():
            if per["accuracy"] < least:
                misses[f"{style}/{task}"] = per["accuracy"]
    return misses


def _train(recipe: str, overrides: list[str], out: Path) -> Path:
    return train_recipe(load_recipe(recipe, overrides), out, resume="auto")[0]


def assemble(llm_model: Path, vit_model: Path, out: Path, projector: bool = False) -> Path:
    """`llm_model` with `vit_model`'s vision tower (both tiny models with the same tokenizer) saved to `out`; the
    projector stays the text run's, which never saw an image (random), unless `projector`: then it is
    `vit_model`'s too (the projector that ViT was trained with)."""
    model, vit = load_model(llm_model), load_model(vit_model)
    model.model.vision_tower.load_state_dict(vit.model.vision_tower.state_dict(), strict=True)
    if projector:
        projector_state = vit.model.multi_modal_projector.state_dict()
        model.model.multi_modal_projector.load_state_dict(projector_state, strict=True)
    save_model(model, out)
    SailVLProcessor.from_pretrained(llm_model).save_pretrained(out)
    return out


def _write_records(records: list[dict], out: Path) -> Path:
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return out


def _train_text_llm(seed: int, out: Path, size: BaseSize, init: Path, corpus: Path) -> Path:
    """The text LLM's stages (module docstring), each a `tiny-text-lm` run from the previous one's export; returns
    the last export. A stage's run directory is named by its budget and every earlier stage's
    (runs/text-colour2000-text3000), so a retry with other budgets trains anew instead of resuming a finished run
    of other settings, and reuses the stages it shares."""
    drill_seed = f"sailvl-base/{BASE_SEED + seed}/drills"
    with open(corpus, encoding="utf-8") as f:
        mixed = [json.loads(line) for line in f] + drills(size.mix_drills, drill_seed)
    random.Random(drill_seed).shuffle(mixed)
    mix = _write_records(mixed, out / "text-drills.jsonl")
    colour = lookup = None
    if size.colour_steps:
        colour_drills = drills(size.colour_drills, f"{drill_seed}/colour", "colour-predicate")
        colour = _write_records(colour_drills, out / "colour-drills.jsonl")
    if size.lookup_steps:  # every task's drills, colour in the predicate form the colour stage learned
        lookup_drills = drills(size.lookup_drills, f"{drill_seed}/lookup", "predicate")
        lookup = _write_records(lookup_drills, out / "lookup-drills.jsonl")
    stages = [
        ("colour", size.colour_steps, colour),
        ("lookup", size.lookup_steps, lookup),
        ("text", size.text_steps, mix),
        ("settle", size.settle_steps, mix),
    ]
    model, name = init, "text"
    for stage, steps, data in stages:
        if not steps:
            continue
        decay = size.weight_decay if stage in ("text", "settle") else 0.0
        name = f"{name}-{stage}{steps}" + (f"wd{decay:g}" if decay else "")
        log.info("base %d: text LLM stage %s, %d steps on %s", seed, stage, steps, data.name)
        overrides = [f"seed={seed}", f"vars.model_dir={model}", f"vars.data={data}", f"stages.0.budget.steps={steps}",
                     f"stages.0.weight_decay={decay}"]  # fmt: skip
        model = _train("tiny-text-lm", overrides, out / "runs" / name)
    return model


def build_base(seed: int, out: str | Path, size: BaseSize = FULL) -> Path:
    """Build (or read back from `out`) the pretrained base of `seed`; returns its model directory.

    A finished base leaves OUT/base.json (sizes, seeds, gate results); a rerun with the same sizes returns the
    cached model, a different size refuses to overwrite it. Raises when the gate is not met."""
    out = Path(out)
    manifest = {"version": VERSION, "seed": seed, "base_world_seed": BASE_SEED + seed,
                "gate_world_seed": GATE_SEED + seed}  # fmt: skip
    # The lookup stage came after bases were built and cached: without it, a base's settings read as before.
    manifest["size"] = {
        k: v for k, v in asdict(size).items() if size.lookup_steps or not k.startswith("lookup_")
    }
    done = out / MANIFEST
    if done.is_file():
        cached = json.loads(done.read_text())
        if {k: cached.get(k) for k in manifest} != manifest:
            raise SailvlError(f"{out} holds a base of other settings ({done}); choose another --out")
        return out / "model"
    flags = {"n_bench": 40, **BASE_WORLD}
    world, gate_world = out / "world", out / "gate-world"
    generate_world(world, size.world_images, BASE_SEED + seed, **flags)
    generate_world(gate_world, size.gate_images, GATE_SEED + seed, **flags)
    init = make_tiny_model_dir(world, out / "init", seed=BASE_SEED + seed)
    corpus, n_text = write_text_corpus(world, out / "text.jsonl")
    llm = _train_text_llm(seed, out, size, init, corpus)
    gate = text_gate(llm, list(text_records(gate_world)), size.gate_items)
    manifest["text_records"], manifest["gate_result"] = n_text, gate
    manifest["text_run"] = llm.parents[1].name  # runs/NAME/text-lm/export
    short = gate_misses(gate, size.gate)
    if short:
        (out / "gate-failed.json").write_text(json.dumps(manifest, indent=2))
        raise SailvlError(
            f"base {seed}: the text LLM misses its gate {size.gate} on held-out text QA: {short} (MCQ letters and "
            f"yes/no arrive late, at a step that varies by seed: retry with more --settle-steps than "
            f"{size.settle_steps}, or --weight-decay 0.1; the stages it shares are reused; "
            f"{out / 'gate-failed.json'} has every score)"
        )
    log.info("base %d: text gate %s; pretraining the ViT %d steps", seed, gate, size.vit_steps)
    captions = write_gold_captions(world, out / "captions.jsonl")
    vit = _train(
        "tiny-captioner",
        [f"seed={seed}", f"vars.world={world}", f"vars.model_dir={init}", f"vars.data={captions}", f"vars.image_root={world}",
         f"stages.0.budget.steps={size.vit_steps}"],
        out / "runs" / f"vit-{size.vit_steps}",
    )  # fmt: skip
    model = assemble(llm, vit, out / "model", projector=True)
    done.write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "gate-failed.json").unlink(missing_ok=True)  # an earlier try's scores, no longer this base's
    return model
