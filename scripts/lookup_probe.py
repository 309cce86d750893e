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

Drills (sailvl.experiment.drills) are short records in the world's question templates with a one-sentence
description ("A pink triangle."); `--form` changes one thing at a time (see that module); `--mix FILE` shuffles the
drills into an existing corpus. What got every lookup (seed 0): a staged run, 2000 steps
on `--form colour-predicate --n 30000`, then from that export 3000 steps on `--n 8000 --mix runs/probe/text.jsonl`,
then 1000 more (a third run). The base (`sailvl experiment base`, version 3) now trains these stages itself.
Results: EXPERIMENTS.md, "Colour lookups: what blocks them".
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from sailvl.experiment import pretrained as base
from sailvl.experiment.drills import FORMS, drills
from sailvl.synth import generate_world
from sailvl.synth.scenes import PLAIN_BACKGROUNDS
from sailvl.synth.tiny_model import make_tiny_model_dir

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
