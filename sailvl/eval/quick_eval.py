"""SAIL-VL SFT data protocols: quick quality evaluation (rank sources) and incremental evaluation (keep if it helps).

Each trial trains one recipe stage on a given list of sources for the same budget, starting from the
recipe's model, then evaluates the export; trials are cached by name, so a rerun resumes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from sailvl.errors import SailvlError

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
    from sailvl.train.recipe import Budget, load_recipe
    from sailvl.train.trainer import train_recipe

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
    from sailvl.eval.model_eval import evaluate_model

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
