"""`sailvl experiment report DIR`: one markdown + HTML page per experiment from its results.json."""

from __future__ import annotations

import json
from pathlib import Path

from sailvl.demo.document import Document
from sailvl.demo.plots import new_figure
from sailvl.errors import SailvlError
from sailvl.experiment.base import HEADLINE, SUMMARY, fmt
from sailvl.experiment.registry import EXPERIMENTS


def _columns(arms: dict) -> list[str]:
    names = {m for points in arms.values() for p in points for m in p["metrics"]}
    fixed = ["average", "open answer", "forced choice", "MCQ letter", "yes/no"]
    return [m for m in fixed if m in names] + sorted(names - set(fixed))


def plot_arms(summary: dict, out: Path, metric: str = HEADLINE) -> Path:
    """Mean `metric` per arm with +-1 std over seeds: curves vs x for experiments with a budget axis, else bars."""
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    arms = summary["arms"]
    if summary.get("x_label"):
        for arm, points in arms.items():
            xs = [p["x"] for p in points]
            means = [p["metrics"][metric]["mean"] for p in points]
            stds = [p["metrics"][metric]["std"] for p in points]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=arm)
        ax.set_xlabel(summary["x_label"])
        if summary["experiment"] == "scaling":
            ax.set_xscale("log")
        ax.legend(fontsize=8)
    else:
        names = list(arms)
        finals = [arms[a][-1]["metrics"][metric] for a in names]
        ax.bar(range(len(names)), [f["mean"] for f in finals], yerr=[f["std"] for f in finals], capsize=4)
        ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(f"{metric} score (%)")
    ax.set_title(f"{summary['experiment']}: {metric}, mean +- std over {len(summary['seeds'])} seed(s)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    return out


def write_experiment_report(out_dir: str | Path) -> Path:
    """Write OUT/report/report.md and report.html (table, plot, verdict, commands); returns the Markdown path."""
    out_dir = Path(out_dir)
    path = out_dir / SUMMARY
    if not path.is_file():
        raise SailvlError(f"{out_dir} has no {SUMMARY}; run `sailvl experiment NAME --out {out_dir}` first")
    summary = json.loads(path.read_text())
    report = out_dir / "report"
    report.mkdir(parents=True, exist_ok=True)
    doc = Document(f"sailvl experiment {summary['experiment']}{' (quick)' if summary['quick'] else ''}")
    doc.paragraph(f"Claim: {summary['claim']}")
    doc.paragraph(f"Verdict: {summary['verdict']}")
    if collapsed := summary.get("collapsed"):
        runs = "; ".join(f"{c['seed']} {c['arm']} {c['point']}: {', '.join(c['tasks'])}" for c in collapsed)
        doc.paragraph(f"Flagged: {len(collapsed)} run(s) gave <= 2 distinct open answers on a task ({runs}).")
    doc.paragraph(f"Seeds {', '.join(map(str, summary['seeds']))}; commands took {summary['seconds'] / 60:.1f} min in all "
                  f"on this machine. Scores are accuracy % on the world's held-out benchmarks, mean +- std over "
                  f"seeds; '{HEADLINE}' is the format the tiny model learns at this scale.")  # fmt: skip
    columns = _columns(summary["arms"])
    x_label = summary.get("x_label")
    rows = [[arm, *([f"{p['x']:.0f}"] if x_label else []), *[fmt(p["metrics"][c]) if c in p["metrics"] else ""
                                                            for c in columns]]
            for arm, points in summary["arms"].items() for p in points]  # fmt: skip
    doc.table(["arm", *([x_label] if x_label else []), *columns], rows)
    if summary["arms"]:
        plot_arms(summary, report / "scores.png")
        doc.image("scores.png", f"{HEADLINE} score per arm, mean +- std over seeds")
    extra = getattr(EXPERIMENTS.get(summary["experiment"]), "report_section", None)
    if extra is not None and summary["arms"]:
        extra(summary, doc, report)
    doc.heading("Commands (rerun any step)")
    doc.table(["seed", "step", "seconds", "command"],
              [[c["seed"], c["title"], c["seconds"], c["command"]] for c in summary["commands"]])  # fmt: skip
    (report / "report.md").write_text(doc.to_markdown(), encoding="utf-8")
    (report / "report.html").write_text(doc.to_html(), encoding="utf-8")
    return report / "report.md"
