"""SAIL-VL SFT data protocols: quick quality evaluation (rank sources), composition evaluation (halve one task
format at a time) and incremental evaluation (keep if it helps).

Each trial trains one recipe stage on a given list of sources for the same budget, starting from the
recipe's model, then evaluates the export; trials are cached by name, so a rerun resumes."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from sailvl.data.readers import iter_raw
from sailvl.errors import SailvlError
from sailvl.eval.model_eval import evaluate_model
from sailvl.train.recipe import Budget
from sailvl.train.recipe_files import load_recipe
from sailvl.train.trainer import train_recipe

# train(source dicts, trial dir) -> export dir;  score(export dir, trial dir) -> score (0-100)
TrainFn = Callable[[list[dict], Path], Path]
ScoreFn = Callable[[Path, Path], float]
TRIAL_FILE = "trial.json"


def source_entry(path: str | Path) -> dict:
    """A data source dict for a candidate file: images resolved relative to the file's directory."""
    path = Path(path)
    if not path.exists():
        raise SailvlError(f"candidate data {path} does not exist")
    return {"path": str(path), "image_root": str(path.parent), "name": path.stem}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def run_trial(name: str, sources: list[dict], out_dir: Path, train: TrainFn, score: ScoreFn) -> dict:
    """Train on `sources` and score the result in `out_dir/<name>`; a finished trial is read back."""
    trial_dir = out_dir / _slug(name)
    marker = trial_dir / TRIAL_FILE
    if marker.is_file():
        return json.loads(marker.read_text())
    trial_dir.mkdir(parents=True, exist_ok=True)
    export = train(sources, trial_dir)
    record = {"name": name, "sources": [s["name"] for s in sources], "model": str(export)}
    record["score"] = float(score(export, trial_dir))
    marker.write_text(json.dumps(record, indent=2) + "\n")
    return record


def quality_eval(candidates: list[dict], out_dir: str | Path, train: TrainFn, score: ScoreFn) -> dict:
    """Quick quality evaluation: the same budget on each candidate alone; candidates ranked by score."""
    out_dir = Path(out_dir)
    trials = [run_trial(f"quality-{c['name']}", [c], out_dir, train, score) for c in candidates]
    ranking = sorted(trials, key=lambda t: t["score"], reverse=True)
    report = {
        "protocol": "quality",
        "ranking": [{"source": t["sources"][0], "score": t["score"]} for t in ranking],
    }
    (out_dir / "quick_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _group_lines(source: dict, group_by: str) -> dict[str, list[str]]:
    """A JSONL source's lines by the value of field `group_by` ("unknown" where a record lacks it)."""
    groups: dict[str, list[str]] = {}
    for _, line_no, line in iter_raw("jsonl", source["path"]):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SailvlError(f"{source['path']} line {line_no + 1} is not a JSON object") from None
        value = record.get(group_by) if isinstance(record, dict) else None
        groups.setdefault("unknown" if value is None else str(value), []).append(line)
    return groups


def composition_eval(
    candidates: list[dict],
    out_dir: str | Path,
    train: TrainFn,
    score: ScoreFn,
    group_by: str = "format",
    fraction: float = 0.5,
    seed: int = 0,
) -> dict:
    """Composition evaluation (SAIL-VL): group the records of all candidates by `group_by` (the task format),
    train on everything, then once per group with that group cut to `fraction` of its records (a seeded
    sample) and the rest unchanged; every trial trains the same budget. A group whose score change (points,
    halved minus full) is negative helps the mixture; a positive change says it is over-represented."""
    if not 0 < fraction < 1:
        raise SailvlError(f"composition fraction must be between 0 and 1, got {fraction}")
    out_dir = Path(out_dir)
    lines = {c["name"]: _group_lines(c, group_by) for c in candidates}
    sizes: dict[str, int] = {}
    for by_group in lines.values():
        for group, rows in by_group.items():
            sizes[group] = sizes.get(group, 0) + len(rows)
    if len(sizes) < 2:
        raise SailvlError(
            f"composition evaluation needs at least two {group_by!r} groups, found {sorted(sizes)}"
        )
    full = run_trial("composition-full", candidates, out_dir, train, score)
    groups = []
    for group in sorted(sizes):
        sources, kept = [], 0
        for candidate in candidates:
            rows = []
            for g, group_rows in lines[candidate["name"]].items():
                chosen = _cut(group_rows, g == group, fraction, seed)
                kept += len(chosen) if g == group else 0
                rows += chosen
            path = out_dir / "data" / _slug(f"halve-{group}") / f"{_slug(candidate['name'])}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(row if row.endswith("\n") else row + "\n" for row in rows), encoding="utf-8"
            )
            sources.append({**candidate, "path": str(path)})
        trial = run_trial(f"composition-halve-{group}", sources, out_dir, train, score)
        groups.append({"group": group, "records": sizes[group], "records_kept": kept, "score": trial["score"],
                       "delta": trial["score"] - full["score"]})  # fmt: skip
    report = {"protocol": "composition", "group_by": group_by, "fraction": fraction,
              "full_score": full["score"], "groups": groups}  # fmt: skip
    (out_dir / "quick_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _cut(rows: list[str], cut: bool, fraction: float, seed: int) -> list[str]:
    # A seeded sample in file order: the same records are dropped on a rerun.
    if not cut or len(rows) < 2:
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), round(len(rows) * fraction)))
    return [rows[i] for i in keep]


def incremental_eval(
    base: list[dict],
    candidates: list[dict],
    out_dir: str | Path,
    train: TrainFn,
    score: ScoreFn,
    tolerance: float = 0.0,
) -> dict:
    """Incremental evaluation: starting from `base`, add candidates one at a time in the given order
    and keep each only if the score does not drop by more than `tolerance` points."""
    out_dir = Path(out_dir)
    kept = list(base)
    steps = []
    best = run_trial("incremental-base", kept, out_dir, train, score)["score"] if kept else None
    for i, candidate in enumerate(candidates):
        trial = run_trial(f"incremental-{i}-{candidate['name']}", kept + [candidate], out_dir, train, score)
        keep = best is None or trial["score"] >= best - tolerance
        steps.append({"source": candidate["name"], "score": trial["score"], "previous": best, "kept": keep})
        if keep:
            kept.append(candidate)
            best = trial["score"]
    report = {
        "protocol": "incremental",
        "steps": steps,
        "kept": [s["name"] for s in kept],
        "final_score": best,
    }
    (out_dir / "quick_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def recipe_trainer(recipe_name: str, overrides: list[str], stage: str | None, samples: int | None) -> TrainFn:
    """A TrainFn training one stage of a recipe (default: its last) from the recipe's model, on the
    given sources only, for `samples` training samples (default: the stage's budget)."""
    recipe = load_recipe(recipe_name, overrides)
    base_stage = recipe.stage(stage) if stage else recipe.stages[-1]

    def train(sources: list[dict], trial_dir: Path) -> Path:
        data = {**base_stage.data, "sources": sources}
        update = {"data": data, "init_from": "model"}
        if samples is not None:
            update["budget"] = Budget(samples=samples)
        trial_recipe = recipe.model_copy(update={"stages": [base_stage.model_copy(update=update)]})
        return train_recipe(trial_recipe, trial_dir / "train", resume="auto")[0]

    return train


def bench_scorer(
    benches: list[str], data_dir: str | Path | None, metric: str = "average", **eval_kwargs
) -> ScoreFn:
    """A ScoreFn running `evaluate_model` on `benches` and returning `metric` (average or a benchmark)."""

    def score(model_dir: Path, trial_dir: Path) -> float:
        results = evaluate_model(model_dir, benches, trial_dir / "eval", data_dir, **eval_kwargs)
        value = (
            results.get(metric) if metric in results else results["benchmarks"].get(metric, {}).get("score")
        )
        if value is None:
            raise SailvlError(
                f"evaluation gave no {metric!r} score (benchmarks: {', '.join(results['benchmarks'])})"
            )
        return float(value)

    return score
