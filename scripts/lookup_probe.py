"""Why does the base's text LLM never learn colour lookups? Corpus variants for the probe (issue 27, session 33).

The base's text LLM (sailvl/experiment/pretrained.py) answers MCQ and yes/no from a description given in text. It
learns the digit and shape lookups (pick the letter of the option it named; say whether the asked value is the
described one) but stays at chance on colour. This script writes the corpora that separate the explanations; each
is then trained with the base's own recipe and scored per task on held-out items:

    PYTHONPATH=. python scripts/lookup_probe.py world --out runs/probe          # seed 0's base + gate world, init
    PYTHONPATH=. python scripts/lookup_probe.py drills --out runs/probe/drills.jsonl --n 40000 --seed 2 [--form ...]
    sailvl train tiny-text-lm seed=0 vars.model_dir=runs/probe/init vars.data=runs/probe/drills.jsonl \\
        stages.0.budget.steps=3000 --out runs/probe/run
    PYTHONPATH=. python scripts/lookup_probe.py score runs/probe/run/text-lm/export runs/probe/gate.json

Drills are short records in the world's question templates with a one-sentence description ("A pink triangle.").
`--form` changes one thing at a time: `predicate` describes the colour as "The triangle is pink." (colour drills),
`no-anchor` asks shape yes/no without a colour ("Is there a circle?") and digits without ink colour,
`colour-only` keeps only the colour drills, `colour-predicate` only the colour drills in predicate form;
`--mix FILE` shuffles the drills into an existing corpus. What got every lookup (seed 0): a staged run, 2000 steps
on `--form colour-predicate --n 30000`, then from that export 3000 steps on `--n 8000 --mix runs/probe/text.jsonl`,
then 1000 more (a third run).
Results: EXPERIMENTS.md, "Colour lookups: what blocks them".
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from sailvl.experiment import pretrained as base
from sailvl.synth import generate_world
from sailvl.synth.formats import mcq_answer, mcq_prompt, yesno_prompt
from sailvl.synth.scenes import COLOURS, PLAIN_BACKGROUNDS, SHAPES
from sailvl.synth.tiny_model import make_tiny_model_dir

FORMS = ("modifier", "predicate", "no-anchor", "colour-only", "colour-predicate")
# Plain backgrounds whose name holds a colour-like word ("pale green"); the probe replaces them with "plain".
_NAMED = "|".join(b for b in PLAIN_BACKGROUNDS if b != "white")
COLOURED_BACKGROUND = re.compile(rf"\b({_NAMED}) background")


def write_world(out: Path, seed: int = 0) -> None:
    """Seed `seed`'s base world, gate world and random init, as build_base makes them; the base corpus, the same
    corpus with background colour words removed, and the gate items (both ways) as JSON."""
    flags = {"n_bench": 40, **base.BASE_WORLD}
    generate_world(out / "world", 4000, base.BASE_SEED + seed, **flags)
    generate_world(out / "gate-world", 400, base.GATE_SEED + seed, **flags)
    make_tiny_model_dir(out / "world", out / "init", seed=base.BASE_SEED + seed)
    base.write_text_corpus(out / "world", out / "text.jsonl")
    gate = list(base.text_records(out / "gate-world"))
    (out / "gate.json").write_text(json.dumps(gate))
    (out / "gate-nobg.json").write_text(json.dumps([_no_background_colour(r) for r in gate]))
    with open(out / "text-nobg.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(_no_background_colour(r)) + "\n" for r in base.text_records(out / "world"))


def _no_background_colour(record: dict) -> dict:
    turns = [
        {**t, "value": COLOURED_BACKGROUND.sub("plain background", t["value"])}
        for t in record["conversations"]
    ]
    return {**record, "conversations": turns}


def _record(i: int, task: str, style: str, prompt: str, answer: str) -> dict:
    turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
    return {"id": f"drill-{i}", "task": task, "format": style, "conversations": turns}


def _other(rng: random.Random, value: str, space: list[str]) -> str:
    return rng.choice([x for x in space if x != value])


def _mcq(rng: random.Random, desc: str, question: str, value: str, space: list[str]) -> tuple[str, str]:
    """An MCQ prompt and its text-letter answer; four-value spaces (shapes) list every value."""
    others = [x for x in space if x != value]
    options = list(space) if len(space) == 4 else [value, *rng.sample(others, 3)]
    rng.shuffle(options)
    prompt = mcq_prompt(f"Description: {desc}\n{question}", options)
    return prompt, mcq_answer(options, value, "text-letter")


def drills(n: int, seed: int, form: str = "modifier") -> list[dict]:
    """`n` drill records, the six (task, style) kinds in turn (colour-only: colour MCQ and yes/no in turn)."""
    rng = random.Random(seed)
    colours, shapes, digits = list(COLOURS), list(SHAPES), [str(k) for k in range(10)]
    out = []
    for i in range(n):
        kind = i % 2 if form.startswith("colour-") else i % 6
        c, s, d = rng.choice(colours), rng.choice(shapes), rng.choice(digits)
        verdict = "Yes" if rng.random() < 0.5 else "No"
        where = f" on a {rng.choice(list(PLAIN_BACKGROUNDS))} background" if rng.random() < 0.5 else ""
        if kind < 4:
            predicate = form in ("predicate", "colour-predicate") and kind < 2
            desc = f"The {s} is {c}." if predicate else f"A {c} {s}{where}."
        else:
            ink = "" if form == "no-anchor" else f" in {c} ink"
            desc = f"The handwritten digit {d}{ink}."
        if kind == 0:
            out.append(_record(i, "colour", "mcq", *_mcq(rng, desc, "What colour is the shape?", c, colours)))
        elif kind == 1:
            asked = c if verdict == "Yes" else _other(rng, c, colours)
            prompt = yesno_prompt(f"Description: {desc}\nIs the shape {asked}?")
            out.append(_record(i, "colour", "yesno", prompt, verdict))
        elif kind == 2:
            out.append(_record(i, "shape", "mcq", *_mcq(rng, desc, "What shape is the shape?", s, shapes)))
        elif kind == 3:
            asked = s if verdict == "Yes" else _other(rng, s, shapes)
            thing = asked if form == "no-anchor" else f"{c} {asked}"
            prompt = yesno_prompt(f"Description: {desc}\nIs there a {thing} in the image?")
            out.append(_record(i, "shape", "yesno", prompt, verdict))
        elif kind == 4:
            out.append(
                _record(i, "digit", "mcq", *_mcq(rng, desc, "What digit is written in the image?", d, digits))
            )
        else:
            asked = d if verdict == "Yes" else _other(rng, d, digits)
            prompt = yesno_prompt(f"Description: {desc}\nIs the handwritten digit a {asked}?")
            out.append(_record(i, "digit", "yesno", prompt, verdict))
    return out


def score(model: Path, items: Path) -> dict:
    """The base gate's per-style, per-task accuracy of `model` on the JSON list of text records `items`."""
    gate = base.text_gate(model, json.loads(items.read_text()), 300)
    return {
        style: {
            "all": round(100 * s["accuracy"], 1),
            **{t: round(100 * v["accuracy"]) for t, v in s["per_task"].items()},
        }
        for style, s in gate.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("world")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("drills")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--n", type=int, default=8000)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--form", choices=FORMS, default="modifier")
    d.add_argument("--mix", type=Path, help="a corpus to shuffle the drills into")
    d.add_argument("--json", action="store_true", help="write a JSON list (held-out items for `score`)")
    s = sub.add_parser("score")
    s.add_argument("model", type=Path)
    s.add_argument("items", type=Path)
    args = parser.parse_args()
    if args.cmd == "world":
        write_world(args.out, args.seed)
    elif args.cmd == "drills":
        records = drills(args.n, args.seed, args.form)
        if args.mix:
            with open(args.mix, encoding="utf-8") as f:
                records += [json.loads(line) for line in f]
            random.Random(args.seed).shuffle(records)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.json:
            args.out.write_text(json.dumps(records))
        else:
            with open(args.out, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        print(json.dumps({"records": len(records), "out": str(args.out)}))
    else:
        print(json.dumps(score(args.model, args.items)))


if __name__ == "__main__":
    main()
