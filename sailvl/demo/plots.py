"""Labelled PNG charts for the demo report: loss curves per stage and accuracy against chance."""

from __future__ import annotations

import json
from pathlib import Path


def new_figure(width: float, height: float):
    # A bare Figure on an Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def read_metrics(path: Path) -> list[dict]:
    """Rows of a trainer `metrics.jsonl` (one JSON object per logged step)."""
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_loss_curves(runs: dict[str, Path], out: Path) -> Path:
    """One panel per training run (`{title: metrics.jsonl}`), one line per stage, loss (nats/token) vs step."""
    fig = new_figure(5.0 * len(runs), 3.8)
    for i, (title, path) in enumerate(runs.items(), start=1):
        ax = fig.add_subplot(1, len(runs), i)
        rows = read_metrics(path)
        stages: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            stages.setdefault(row["stage"], []).append((row["step"], row["loss"]))
        offset = 0
        for stage, points in stages.items():
            steps = [offset + s for s, _ in points]
            ax.plot(steps, [loss for _, loss in points], label=stage, linewidth=1.2)
            offset = steps[-1] if steps else offset
        ax.set_title(title)
        ax.set_xlabel("optimizer step (stages back to back)")
        ax.set_ylabel("train loss (nats / target token)")
        ax.grid(alpha=0.3)
        if stages:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    return out


def plot_accuracy(rows: list[dict], out: Path, title: str) -> Path:
    """Grouped bars: accuracy (%) per `label` with the chance level drawn as a black tick on each bar."""
    fig = new_figure(max(6.0, 0.55 * len(rows) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(rows)))
    colours = ["#4C72B0" if r["accuracy"] > (r["chance"] or 0) else "#C44E52" for r in rows]
    ax.bar(xs, [r["accuracy"] for r in rows], color=colours, label="model")
    for x, row in zip(xs, rows, strict=True):
        if row["chance"] is not None:
            ax.hlines(row["chance"], x - 0.4, x + 0.4, colors="black", linewidth=2)
        ax.text(x, row["accuracy"] + 1.5, f"{row['accuracy']:.0f}", ha="center", fontsize=8)
    ax.hlines([], 0, 0, colors="black", linewidth=2, label="chance")
    ax.set_xticks(xs, [r["label"] for r in rows], rotation=40, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    return out
