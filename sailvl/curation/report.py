"""Run report: the funnel (records in, rejected per step and reason, kept), PNG histograms of judge scores
and caption lengths, and caption quality before / after recaption, read from a finished run directory."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sailvl.curation.caption_stats import STAT_COLUMNS, plot_recaption_stats, recaption_stats, stats_rows
from sailvl.curation.lineage import check_lineage
from sailvl.curation.records import caption_of
from sailvl.curation.shards import READ_STEP
from sailvl.data.readers import read_source
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError


def _pipeline(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "pipeline.json"
    if not path.exists():
        raise SailvlError(f"{run_dir} is not a curation run directory (no pipeline.json)")
    return json.loads(path.read_text())["config"]


def _step_names(config: dict[str, Any]) -> list[str]:
    return [spec.get("name") or spec["type"] for spec in config["steps"]]


def funnel(run_dir: str | Path) -> dict[str, Any]:
    """`{input, kept, complete, steps: [{step, in, rejected, reasons: {reason: n}, out}]}` in pipeline order."""
    run_dir = Path(run_dir)
    config = _pipeline(run_dir)
    lineage = check_lineage(run_dir)
    total = lineage.kept + lineage.rejected
    by_step: dict[str, Counter[str]] = {}
    for (step, reason), n in lineage.by_reason.items():
        by_step.setdefault(step, Counter())[reason] = n
    rows, remaining = [], total
    for name in [READ_STEP, *_step_names(config)]:
        reasons = by_step.get(name, Counter())
        if name == READ_STEP and not reasons:
            continue
        dropped = sum(reasons.values())
        rows.append({"step": name, "in": remaining, "rejected": dropped, "reasons": dict(reasons.most_common()),
                     "out": remaining - dropped})  # fmt: skip
        remaining -= dropped
    done = len(list((run_dir / "done").glob("*.json")))
    return {"name": config.get("name", ""), "input": total, "kept": lineage.kept, "shards_done": done,
            "ids_unique": not lineage.repeated_ids, "steps": rows}  # fmt: skip


def format_funnel(report: dict[str, Any]) -> str:
    """Plain-text funnel table (one line per step, indented reasons), then the caption statistics."""
    lines = [f"run {report['name']}: {report['input']} records in, {report['kept']} kept "
             f"({100 * report['kept'] / max(report['input'], 1):.1f}%), {report['shards_done']} shards done"]  # fmt: skip
    lines.append(f"{'step':<22}{'in':>9}{'rejected':>10}{'out':>9}")
    for row in report["steps"]:
        lines.append(f"{row['step']:<22}{row['in']:>9}{row['rejected']:>10}{row['out']:>9}")
        for reason, n in row["reasons"].items():
            lines.append(f"    {reason:<26}{n:>10}")
    if report.get("caption_stats"):
        lines.append("captions of kept recaptioned records (before = alt-text):")
        lines.append("".join(f"{c:>14}" for c in ["source", "when", *STAT_COLUMNS]))
        for row in stats_rows(report["caption_stats"]):
            lines.append("".join(f"{str(v):>14}" for v in row))
    return "\n".join(lines)


def kept_samples(run_dir: Path, fmt: str) -> Iterator[Any]:
    """Kept records of a run in any output format, in shard then offset order."""
    ext = {"jsonl": "jsonl", "webdataset": "tar", "parquet": "parquet"}[fmt]
    for path in sorted((run_dir / "kept").glob(f"shard-*.{ext}")):
        yield from read_source(fmt, path)


def _rejected_samples(run_dir: Path) -> Iterator[tuple[str, Any]]:
    for path in sorted((run_dir / "rejected").glob("shard-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if "sample" in row:
                    yield row["step"], Sample.from_dict(row["sample"])


def _histogram(path: Path, series: dict[str, list[float]], title: str, xlabel: str, bins: Any) -> None:
    # A bare Figure + Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    data = [v for v in series.values()]
    labels = [f"{k} (n={len(v)})" for k, v in series.items()]
    if any(data):
        ax.hist(data, bins=bins, label=labels, stacked=True)
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("records")
    fig.tight_layout()
    fig.savefig(path)


def write_report(run_dir: str | Path) -> dict[str, Any]:
    """Compute the funnel and write `report/funnel.json`, `judge_scores.png`, `caption_lengths.png` (and
    `judge_alignment.png` when a likelihood judge scored the captions; with recaptioned records, their caption
    statistics per source before / after recaption in funnel.json `caption_stats` and `caption_quality.png`)."""
    run_dir = Path(run_dir)
    config = _pipeline(run_dir)
    report = funnel(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    lengths: dict[str, list[float]] = {"kept": [], "rejected": []}
    scores: dict[str, list[float]] = {"kept": [], "rejected": []}
    alignment: dict[str, list[float]] = {"kept": [], "rejected": []}
    pairs = [("kept", s) for s in kept_samples(run_dir, config["output"]["format"])]
    pairs += [("rejected", s) for _, s in _rejected_samples(run_dir)]
    for status, sample in pairs:
        lengths[status].append(len(caption_of(sample).split()))
        if isinstance(sample.metadata.get("judge_vir"), int | float):
            scores[status].append(sample.metadata["judge_vir"])
        if isinstance(sample.metadata.get("judge_ita_score"), int | float):
            alignment[status].append(sample.metadata["judge_ita_score"])
    _histogram(out / "judge_scores.png", scores, "Judge richness score (VIR)", "score (1-5)",
               [0.5, 1.5, 2.5, 3.5, 4.5, 5.5])  # fmt: skip
    _histogram(out / "caption_lengths.png", lengths, "Caption length", "words", 30)
    report["plots"] = [str(out / "judge_scores.png"), str(out / "caption_lengths.png")]
    if any(alignment.values()):  # the likelihood judge's alignment scores
        _histogram(out / "judge_alignment.png", alignment, "Judge alignment (caption likelihood)",
                   "weakest token: nats below the judge's top choice", 30)  # fmt: skip
        report["plots"].append(str(out / "judge_alignment.png"))
    kept = [sample for status, sample in pairs if status == "kept"]
    if any(s.metadata.get("caption_type") == "recaptioned" for s in kept):
        try:
            report["caption_stats"] = recaption_stats(kept)
        except SailvlError as exc:  # no POS tagger installed: lengths and n-grams only
            report["caption_stats"] = recaption_stats(kept, tag=False)
            report["caption_stats_note"] = str(exc)
        plot_recaption_stats(report["caption_stats"], out / "caption_quality.png")
        report["plots"].append(str(out / "caption_quality.png"))
    (out / "funnel.json").write_text(json.dumps(report, indent=1))
    return report
