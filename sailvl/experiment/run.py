"""Running an experiment: every seed's plan through the resuming runner, then the aggregate and its report.

Kept out of `base` (the plumbing every experiment module imports) because it writes the report, and the report
imports the registry of those modules: `base` stays a leaf, so the imports run one way
(run -> report -> registry -> experiment modules -> base).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console

from sailvl.demo.runner import StepRunner
from sailvl.errors import SailvlError
from sailvl.experiment.base import (
    SUMMARY,
    SeedDirs,
    collect,
    finished_commands,
    run_steps,
    samples_x,
    seed_control_gaps,
    test_set_command,
)
from sailvl.experiment.pretrained import MANIFEST
from sailvl.experiment.report import write_experiment_report
from sailvl.experiment.stats import collapsed_tasks


def run_experiment(
    experiment,
    out: str | Path,
    seeds: int = 3,
    quick: bool = False,
    first_seed: int = 0,
    invoke: Callable[[list[str]], None] | None = None,
    jobs: int = 1,
    base: str | Path | None = None,
) -> Path:
    """Run every seed's plan (resuming finished commands), aggregate, write OUT/results.json and the report.

    `jobs` > 1 runs that many seeds at once, each command with an equal share of the CPU threads (small models
    use cores better side by side than through intra-op threads). `invoke`: see StepRunner (tests run the
    commands in-process, one seed at a time). `base`: a built pretrained base (`sailvl experiment base`) every
    seed starts from, for experiments that start from one (`USES_BASE`); without it each seed builds its own.
    Returns the report's Markdown path."""
    if seeds < 1:
        raise SailvlError(f"--seeds must be at least 1, got {seeds}")
    if jobs < 1:
        raise SailvlError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out).resolve()
    plan_kwargs = base_kwargs(experiment, base)
    console = Console()
    jobs = 1 if invoke is not None else min(jobs, seeds)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} if jobs > 1 else {}

    budgets = getattr(experiment, "QUICK" if quick else "FULL", None)
    if budgets is not None:  # one test set for every seed, written before any seed evaluates on it
        run_steps(StepRunner(out, console, invoke), [test_set_command(out, budgets.size)])

    def run_seed(seed: int) -> None:
        root = out / f"seed-{seed}"
        console.print(f"[bold]{experiment.NAME}[/] seed {seed} -> {root}")
        runner = StepRunner(root, console, invoke, env=env, live=jobs == 1)
        run_steps(runner, experiment.plan(SeedDirs(root), seed, quick, **plan_kwargs))

    with ThreadPoolExecutor(jobs) as pool:  # commands run in subprocesses: threads only wait on them
        for future in [pool.submit(run_seed, s) for s in range(first_seed, first_seed + seeds)]:
            future.result()
    # Every finished seed directory under OUT counts: `--first-seed 3 --seeds 2` adds two seeds to a run of 3, and
    # processes running one seed each into the same OUT (seeds in parallel) leave each other's unfinished seeds alone.
    seed_list, commands = [], []
    for root in sorted(out.glob("seed-*"), key=lambda p: int(p.name.removeprefix("seed-"))):
        seed = int(root.name.removeprefix("seed-"))
        ran = finished_commands(root / "logs", experiment.plan(SeedDirs(root), seed, quick, **plan_kwargs))
        if ran is None:
            console.print(
                f"[yellow]seed {seed} is not finished (running elsewhere?): left out of {SUMMARY}[/]"
            )
            continue
        seed_list.append(seed)
        commands += [{"seed": seed, "title": c.title, "seconds": t, "command": c.shell()} for c, t in ran]
    arms = collect([out / f"seed-{s}" for s in seed_list], getattr(experiment, "x_of", samples_x))
    summary = {"experiment": experiment.NAME, "quick": quick, "seeds": seed_list,
               "claim": experiment.CLAIM, "x_label": getattr(experiment, "X_LABEL", None), "arms": arms,
               "seconds": sum(c["seconds"] for c in commands), "commands": commands}  # fmt: skip
    if "base" in plan_kwargs:
        summary["base"] = base_manifests(plan_kwargs["base"], [out / f"seed-{s}" for s in seed_list])
    summary["control_gap_per_seed"] = seed_control_gaps(summary, getattr(experiment, "CONTROLS", None))
    summary["eval_items"] = eval_items([out / f"seed-{s}" for s in seed_list])
    summary["collapsed"] = collapsed_runs([out / f"seed-{s}" for s in seed_list])
    summary["verdict"] = experiment.verdict(summary)
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return write_experiment_report(out)


def base_kwargs(experiment, base: str | Path | None) -> dict:
    """The plan's `base` keyword: {} for an experiment that starts from no base (refusing a --base given to it),
    else {"base": the resolved directory, or None for one base per seed}."""
    if not getattr(experiment, "USES_BASE", False):
        if base is not None:
            raise SailvlError(
                f"experiment {experiment.NAME} does not start from a pretrained base: drop --base"
            )
        return {}
    if base is None:
        return {"base": None}
    base = Path(base).resolve()
    if not (base / MANIFEST).is_file():
        raise SailvlError(f"--base {base} holds no finished base ({MANIFEST}): build it with "
                          f"`sailvl experiment base --out {base}`")  # fmt: skip
    return {"base": base}


def base_manifests(shared: Path | None, seed_roots: list[Path]) -> dict:
    """What the arms started from: the shared base's directory and manifest, or each seed's own."""
    if shared is not None:
        return {"shared": True, "dir": str(shared), "manifest": json.loads((shared / MANIFEST).read_text())}
    manifests = {root.name: SeedDirs(root).base / MANIFEST for root in seed_roots}
    per_seed = {name: json.loads(path.read_text()) for name, path in manifests.items() if path.is_file()}
    return {"shared": False, "per_seed": per_seed}


def eval_items(seed_roots: list[Path]) -> dict[str, int]:
    """Benchmark name -> items scored, from the first evaluated run (every arm of a seed scores the same items)."""
    for root in seed_roots:
        for path in sorted((root / "eval").glob("*/*/results.json")):
            benchmarks = json.loads(path.read_text()).get("benchmarks", {})
            return {name: int(bench.get("n", 0)) for name, bench in sorted(benchmarks.items())}
    return {}


def collapsed_runs(seed_roots: list[Path], bench: str = "synth_vqa") -> list[dict]:
    """Every evaluated run whose open answers take <= 2 distinct values on some task ({seed dir, arm, point,
    tasks}): its accuracy is the share of the majority answer, not what the arm learned. Tasks come from the
    benchmark TSV the run was scored on (the shared test set)."""
    flagged = []
    for root in seed_roots:
        tsv = SeedDirs(root).test / "bench" / f"{bench}.tsv"
        if not tsv.is_file():
            continue
        with open(tsv, encoding="utf-8", newline="") as handle:
            task_of = {
                row["index"]: row.get("category", "") for row in csv.DictReader(handle, delimiter="\t")
            }
        for path in sorted((root / "eval").glob(f"*/*/{bench}/predictions.jsonl")):
            answers: dict[str, list[str]] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a torn last line of a killed run
                    continue
                answers.setdefault(task_of.get(str(record["index"]), ""), []).append(str(record["value"]))
            if tasks := collapsed_tasks(answers):
                point = path.parent.parent
                flagged.append(
                    {"seed": root.name, "arm": point.parent.name, "point": point.name, "tasks": tasks}
                )
    return flagged
