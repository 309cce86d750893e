"""`sailvl demo`: the whole SAIL-VL loop on synthetic data, tiny model, CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from sailvl.cli.app import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output directory (world, runs, report)."),
    quick: bool = typer.Option(False, "--quick", help="A shrunken demo (smaller world and budgets) for CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the world and of every training run."),
) -> None:
    """Synthesise a world, curate it, train tiny SAILViT, evaluate, and write OUT/report/report.md (+ .html)."""
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    from sailvl.demo.pipeline import run_demo
    from sailvl.demo.report import bench_label

    start = time.perf_counter()
    report = run_demo(out, quick=quick, seed=seed)
    summary = json.loads((report.parent / "summary.json").read_text())
    table = Table(title="held-out accuracy of the final model, % (chance)")
    by_benchmark = summary["task_by_benchmark"]
    benches = sorted({b for by in by_benchmark.values() for b in by})
    table.add_column("task")
    for col in [bench_label(b) for b in benches] + ["all formats", "items"]:
        table.add_column(col, justify="right")
    cell = lambda v: f"{v['accuracy']:.1f} ({v['chance']:.1f})"  # noqa: E731
    for task, row in summary["tasks"].items():
        by = by_benchmark.get(task, {})
        table.add_row(task, *[cell(by[b]) if b in by else "" for b in benches], cell(row), str(row["n"]))
    Console().print(table)
    typer.echo(f"report: {report} (and {report.with_suffix('.html')})")
    typer.echo(f"total time: {(time.perf_counter() - start) / 60:.1f} min")
