"""Think-trace SFT on CPU (issue 25, "Thinking"): does a tiny model trained on think.jsonl learn the `<think>` trace
format, and how well does it add the two digits?

A world of two-digit images answered with `<think>The left digit is 3. The right digit is 4. 3 + 4 = 7.</think>7`
(`sailvl synth --think N`, fixed digit placement), a tiny model whose tokenizer holds `<think>` / `</think>`, the
shipped `finetune` recipe sized for CPU, then `sailvl eval` on the held-out synth_think bench (scored on the text
after the trace) and a step-by-step breakdown of the traces (format, each digit read, arithmetic, answer).

    PYTHONPATH=. python scripts/think_sft.py --work runs/think-sft   # defaults: the measured run (~20 min)

Prints one JSON object (also written to WORK/results.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sailvl.eval.model_eval import evaluate_model
from sailvl.eval.tsv import read_benchmark
from sailvl.synth import generate_world
from sailvl.synth.think import THINK_BENCH, trace_breakdown
from sailvl.synth.tiny_model import make_tiny_model_dir
from sailvl.train import load_recipe
from sailvl.train.trainer import train_recipe

CPU = ["parallel.activation_checkpointing=false", "parallel.mixed_precision=fp32", "data.max_tokens=512",
       "data.num_workers=0", "stages.0.warmup=0.05", "stages.0.budget.samples=null", "stages.0.save_every=0",
       "stages.0.max_tiles=1"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("runs/think-sft"))
    parser.add_argument("--images", type=int, default=5000, help="think.jsonl records (one image each)")
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps (one 512-token pack each)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--bench", type=int, default=100, help="held-out synth_think items")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    world, work = args.work / "world", args.work
    generate_world(
        world, 20, args.seed, tasks=["digit"], n_bench=args.bench, think=args.images, digit_jitter=0.0
    )
    tiny = make_tiny_model_dir(world, work / "tiny", seed=args.seed)
    overrides = [f"vars.model_dir={tiny}", f"vars.data={world / 'think.jsonl'}", f"vars.image_root={world}",
                 f"seed={args.seed}", f"stages.0.lr={args.lr}", f"stages.0.budget.steps={args.steps}", *CPU]  # fmt: skip
    (export,) = train_recipe(load_recipe("finetune", overrides), work / "run")
    losses = [json.loads(line)["loss"] for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    tsv = world / "bench" / f"{THINK_BENCH}.tsv"
    results = evaluate_model(export, [str(tsv)], out_dir=work / "eval")
    bench = results["benchmarks"][THINK_BENCH]
    items = list(read_benchmark(tsv, decode_images=False))
    cache = work / "eval" / THINK_BENCH / "predictions.jsonl"
    replies = {r["index"]: r["value"] for r in map(json.loads, cache.read_text().splitlines())}
    truths = [(int(it.extra["left"]), int(it.extra["right"])) for it in items]
    summary = {
        "images": args.images, "steps": args.steps, "lr": args.lr, "seed": args.seed,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "score": bench["score"], "answers_with_think": bench["answers_with_think"],
        "majority_sum_share": max(sum(it.answer == a for it in items) for a in {it.answer for it in items}) / len(items),
        "breakdown": trace_breakdown(truths, [replies[str(it.index)] for it in items]),
    }  # fmt: skip
    (work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
