"""The demo report: curation funnel, judge quality, loss curves, accuracy vs chance, scaling fit, chat answers."""

from __future__ import annotations

import base64
import csv
import json
import logging
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

from sailvl.curation.caption_stats import STAT_COLUMNS, stats_rows
from sailvl.demo.document import Document
from sailvl.demo.layout import SAILVIT_STAGES
from sailvl.demo.plots import plot_accuracy, plot_loss_curves

log = logging.getLogger(__name__)

csv.field_size_limit(sys.maxsize)
HEADLINE_TASKS = ("colour", "shape", "digit")


def _read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def answer_space_chance(tsv: Path) -> dict[str, float]:
    """Per category, 100 / (distinct answers): the uniform-guess accuracy of an open short-answer question."""
    answers: dict[str, set] = defaultdict(set)
    for row in _read_tsv(tsv):
        answers[row["category"]].add(row["answer"].strip().lower())
    return {cat: 100.0 / len(values) for cat, values in answers.items()}


def held_out_examples(tsv: Path, out_dir: Path, n: int) -> list[dict]:
    """The first `n` benchmark rows of distinct categories, images written to PNG files for `sailvl chat`."""
    examples, seen = [], set()
    for row in _read_tsv(tsv):
        if row["category"] in seen or len(examples) >= n:
            continue
        seen.add(row["category"])
        path = out_dir / f"chat_{len(examples)}.png"
        path.write_bytes(base64.b64decode(row["image"]))
        examples.append({"image": str(path), "question": row["question"], "expected": row["answer"],
                         "category": row["category"]})  # fmt: skip
    return examples


def accuracy_rows(results: dict, world: Path) -> list[dict]:
    """Flatten a results.json into rows {label, benchmark, category, accuracy, chance, n} (percent)."""
    rows = []
    for name, bench in sorted(results["benchmarks"].items()):
        open_chance = answer_space_chance(Path(bench["tsv"])) if bench.get("chance") in (None, 0.0) else {}
        for cat, r in sorted(bench.get("per_category", {}).items()):
            chance = r.get("chance") if r.get("chance") is not None else open_chance.get(cat)
            rows.append({"label": f"{name.removeprefix('synth_')}:{cat}", "benchmark": name, "category": cat,
                         "accuracy": r["accuracy"], "chance": chance, "n": r["n"]})  # fmt: skip
    return rows


def task_summary(rows: list[dict]) -> dict[str, dict]:
    """Per task over all benchmarks: accuracy and chance weighted by item count (percent)."""
    acc, chance, n = Counter(), Counter(), Counter()
    for r in rows:
        acc[r["category"]] += r["accuracy"] * r["n"]
        chance[r["category"]] += (r["chance"] or 0.0) * r["n"]
        n[r["category"]] += r["n"]
    return {c: {"accuracy": acc[c] / n[c], "chance": chance[c] / n[c], "n": n[c]} for c in sorted(n)}


BENCH_LABELS = {"synth_vqa": "open answer", "synth_mcq": "MCQ letter", "synth_yesno": "yes/no"}


def bench_label(name: str) -> str:
    """Column label of a benchmark: its answer format for the synthetic ones."""
    return BENCH_LABELS.get(name, name.removeprefix("synth_"))


def task_by_benchmark(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """{task: {benchmark: {accuracy, chance, n}}}: the answer formats apart (open, MCQ letter, yes/no), since a
    small model can learn one format long before another."""
    table: dict[str, dict[str, dict]] = {}
    for r in rows:
        table.setdefault(r["category"], {})[r["benchmark"]] = {
            "accuracy": r["accuracy"],
            "chance": r["chance"] or 0.0,
            "n": r["n"],
        }
    return {task: dict(sorted(by.items())) for task, by in sorted(table.items())}


def accuracy_table(tasks: dict[str, dict], by_benchmark: dict[str, dict[str, dict]]) -> tuple[list, list]:
    """(header, rows) of the per-task table: "accuracy (chance)" per answer format, all formats, items."""
    benches = sorted({b for by in by_benchmark.values() for b in by})
    cell = lambda v: f"{v['accuracy']:.1f} ({v['chance']:.1f})"  # noqa: E731
    header = ["task", *[bench_label(b) for b in benches], "all formats", "items"]
    rows = [
        [
            t,
            *[cell(by_benchmark[t][b]) if b in by_benchmark.get(t, {}) else "" for b in benches],
            cell(v),
            str(v["n"]),
        ]
        for t, v in tasks.items()
    ]
    return header, rows


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_report(
    paths,
    results,
    chats: list[dict],
    seconds: float,
    size,
    seed: int,
    dropped: tuple[str, ...] | list[str] = (),
    fit: dict | None = None,
    start: str = "untrained",
) -> Path:
    """Write report.md, report.html and summary.json under OUT/report; returns the Markdown path.

    `dropped`: curated sources left out of the SAILViT recipe because curation kept none of their records.
    `fit`: the scaling fit over the stage checkpoints (`parse_scaling_fit` of the step's stdout).
    `start`: the evaluation row of the model the demo started from ("untrained", or "base" for a pretrained base)."""
    out = paths.report
    doc = Document("sailvl demo: the SAIL-VL loop on a synthetic world")
    doc.paragraph(f"Seed {seed}; world of {size.world_images} images at 112 px; total wall time {seconds / 60:.1f} min "
                  "on this machine. Every step below is a `sailvl` command; rerun any of them from the last section. "
                  f"Training starts from {'a random tiny model' if start == 'untrained' else 'a pretrained base'}.")  # fmt: skip

    # Curation
    doc.heading("1. Curation (SAIL-Caption style)")
    funnel = _load(paths.recaption / "report" / "funnel.json")
    if funnel:
        doc.paragraph(f"Recaption run: {funnel['input']} alt-text records in, {funnel['kept']} kept; "
                      f"lineage ids unique: {funnel['ids_unique']}.")  # fmt: skip
        doc.table(["step", "in", "rejected", "out", "reasons"],
                  [[r["step"], r["in"], r["rejected"], r["out"], ", ".join(f"{k}: {v}" for k, v in r["reasons"].items())]
                   for r in funnel["steps"]])  # fmt: skip
        if funnel.get("caption_stats"):
            doc.paragraph("Caption quality of the kept recaptioned records per source, before (the alt-text) and "
                          "after recaption: length, unique n-grams, distinct nouns / verbs / adjectives.")  # fmt: skip
            doc.table(["source", "when", *STAT_COLUMNS], stats_rows(funnel["caption_stats"]))
        for png in ("judge_scores.png", "judge_alignment.png", "caption_lengths.png", "caption_quality.png"):
            src = paths.recaption / "report" / png
            if src.is_file():
                shutil.copy(src, out / f"curation_{png}")
                doc.image(f"curation_{png}", f"Recaption run: {png.removesuffix('.png').replace('_', ' ')}")
    if dropped:
        doc.paragraph(
            "Left out of the SAILViT recipe because curation kept no records: " + ", ".join(dropped)
        )
    judge = _load(paths.judge_eval / "judge_quality.json")
    if judge:
        calibration = _load(paths.judge_eval / "judge_calibration.json")
        if judge.get("ita_method") == "likelihood" and calibration:
            doc.paragraph(
                f"Alignment is judged by the caption's likelihood under the judge: a caption is misaligned when "
                f"its weakest token is more than {-judge['min_alignment']:.2f} nats below the judge's own top "
                f"choice (threshold fitted on the training world's pairs, where it keeps "
                f"{calibration['keep_rate_aligned']:.0%} of correct captions and rejects "
                f"{calibration['reject_rate_corrupted']:.0%} of corrupted ones)."
            )
        doc.paragraph(
            "Judge quality on held-out (image, caption) pairs (a caption is 'good' when aligned and rich):"
        )
        doc.table(["good", "bad", "kept good (recall)", "rejected bad", "precision"],
                  [[judge["good"], judge["bad"], f"{judge['keep_rate_good']:.2f}", f"{judge['reject_rate_bad']:.2f}",
                    f"{judge['precision']:.2f}"]])  # fmt: skip
        by_source = judge.get("rejected_by_source") or {}
        if by_source:
            doc.paragraph(
                "Share of each held-out caption kind the judge rejects (corrupted: per changed attribute):"
            )
            doc.table(["caption kind", "rejected"], [[k, f"{v:.2f}"] for k, v in by_source.items()])
    curriculum = _load(paths.sft / "curriculum" / "curriculum.json")
    if curriculum:
        keys = curriculum["keys"]
        doc.paragraph(
            "SFT quality scaling: instruction data split into stages rising on every score (stage means)."
        )
        doc.table(["stage", "records", *keys],
                  [[i + 1, s["records"], *[f"{s['means'][k]:.2f}" for k in keys]] for i, s in enumerate(curriculum["stages"])])  # fmt: skip

    # Training
    doc.heading("2. Training")
    curves = {"tiny SAILViT (I, II, III)": paths.sailvit / "metrics.jsonl",
              "captioner": paths.captioner / "metrics.jsonl", "judge": paths.judge / "metrics.jsonl"}  # fmt: skip
    plot_loss_curves({k: v for k, v in curves.items() if v.is_file()}, out / "loss_curves.png")
    doc.image("loss_curves.png", "Training loss per stage")

    # Evaluation
    doc.heading("3. Evaluation on held-out synthetic benchmarks")
    per_stage = {st: _load(paths.eval / st / "results.json") for st in (start, *SAILVIT_STAGES)}
    doc.table(["model", "tokens seen", *[b.removeprefix("synth_") for b in sorted(per_stage[start].get("benchmarks", {}))], "average"],
              [[st, r.get("tokens_seen", 0), *[f"{b['score']:.1f}" for _, b in sorted(r["benchmarks"].items())],
                f"{r['average']:.1f}"] for st, r in per_stage.items() if r])  # fmt: skip
    final = per_stage[SAILVIT_STAGES[-1]]
    rows = accuracy_rows(final, paths.world)
    plot_accuracy(
        rows, out / "accuracy.png", "Final model: accuracy per benchmark and task (black tick = chance)"
    )
    doc.image("accuracy.png", "Accuracy per benchmark:task vs chance")
    tasks, by_benchmark = task_summary(rows), task_by_benchmark(rows)
    doc.paragraph("Accuracy % per task, chance % in brackets:")
    doc.table(*accuracy_table(tasks, by_benchmark))
    if (out / "scaling_fit.png").is_file():
        if fit:
            doc.paragraph(f"Average score = {fit['a']:.2f} + {fit['b']:.2f} * ln(tokens), R^2 = {fit['r2']:.3f} "
                          f"over {fit['n']} stage checkpoints.")  # fmt: skip
        else:
            doc.paragraph(
                "The scaling fit printed no fit line (see its log in OUT/logs); the plot is shown alone."
            )
        doc.image("scaling_fit.png", "Score vs training tokens (log scale) with the fit")

    # Chat
    doc.heading("4. Chat with the final model")
    for ex in chats:
        doc.image(Path(ex["image"]).name, f"{ex['category']}: {ex['question']}")
        doc.paragraph(
            f"Q: {ex['question']} | model: {ex['answer'] or '(empty)'} | expected: {ex['expected']}"
        )

    # Commands
    doc.heading("5. Commands (rerun any step)")
    doc.table(
        ["step", "seconds", "command"],
        [[r.command.title, f"{r.seconds:.0f}", r.command.shell()] for r in results],
    )
    (out / "report.md").write_text(doc.to_markdown(), encoding="utf-8")
    (out / "report.html").write_text(doc.to_html(), encoding="utf-8")
    summary = {"seconds": seconds, "tasks": tasks, "task_by_benchmark": by_benchmark,
               "average": final.get("average"), "judge": judge,
               "per_stage_average": {st: r.get("average") for st, r in per_stage.items() if r}}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return out / "report.md"


def parse_scaling_fit(stdout: str) -> dict | None:
    """The fit `sailvl scaling fit` prints as the last line of its stdout (one JSON object), or None (and a
    warning) when that line is missing or not JSON, so the report shows the plot without the equation."""
    lines = stdout.strip().splitlines()
    try:
        fit = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        fit = None
    if not isinstance(fit, dict):
        log.warning("the scaling fit printed no JSON fit line; the report leaves the equation out")
        return None
    return fit


__all__ = ["held_out_examples", "parse_scaling_fit", "write_report"]
