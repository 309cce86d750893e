"""SAIL-VL SFT data protocols: quick quality evaluation (rank sources), composition evaluation (halve one task
format at a time) and incremental evaluation (keep if it helps).

Each trial trains one recipe stage on a given list of sources for the same budget, starting from the
recipe's model, then evaluates the export. A trial directory is pinned to the trial's fingerprint (candidate
data content, the TrainFn's and ScoreFn's own fingerprints: recipe, stage, budget, starting model, benchmarks,
metric), so a rerun with the same settings resumes and one with other settings is refused, naming them."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from sailvl.data.readers import iter_raw, list_files
from sailvl.errors import SailvlError
from sailvl.eval.fingerprint import Digests, check_fingerprint, read_pins, write_pins
from sailvl.eval.model_eval import evaluate_model
from sailvl.eval.registry import resolve_benchmark
from sailvl.train.recipe import Budget, Recipe
from sailvl.train.recipe_files import load_recipe
from sailvl.train.trainer import train_recipe

# train(source dicts, trial dir) -> export dir;  score(export dir, trial dir) -> score (0-100). Either may carry
# a `fingerprint(digests) -> dict` attribute: what shapes its result besides the sources (recipe, benchmarks).
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


def trial_fingerprint(sources: list[dict], train: TrainFn, score: ScoreFn, digests: Digests) -> dict:
    """What shapes a trial's score: each source's settings and file contents, and the train / score settings."""
    by_name = {}
    for source in sources:
        # By content, not path: the halved data of a composition trial moves with its --out directory.
        files = list_files(source.get("format", "jsonl"), source["path"])
        settings = {k: v for k, v in source.items() if k != "path"}
        by_name[source["name"]] = {**settings, "files": [digests.file(f) for f in files]}
    parts = {"train": getattr(train, "fingerprint", None), "score": getattr(score, "fingerprint", None)}
    return {"sources": by_name, **{key: part(digests) if part else None for key, part in parts.items()}}


def run_trial(
    name: str,
    sources: list[dict],
    out_dir: Path,
    train: TrainFn,
    score: ScoreFn,
    digests: Digests | None = None,
) -> dict:
    """Train on `sources` and score the result in `out_dir/<name>`; a finished trial is read back.

    The trial is pinned to `trial_fingerprint` (in out_dir's fingerprints.json): anything left in its directory
    by a trial with other data or settings (finished, or a half-trained checkpoint) raises SailvlError."""
    trial_dir = out_dir / _slug(name)
    marker = trial_dir / TRIAL_FILE
    digests = digests or Digests()
    pins = read_pins(out_dir)
    digests.learn(pins.get("digests"))
    fingerprint = trial_fingerprint(sources, train, score, digests)
    stored = pins["fingerprints"].get(trial_dir.name)
    has_cache = trial_dir.is_dir() and any(trial_dir.iterdir())
    hint = f"use another --out or delete {trial_dir}"
    check_fingerprint(trial_dir, stored, fingerprint, f"trial {name} results", has_cache, hint)
    write_pins(out_dir, {trial_dir.name: fingerprint}, digests)
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
    out_dir, digests = Path(out_dir), Digests()
    trials = [run_trial(f"quality-{c['name']}", [c], out_dir, train, score, digests) for c in candidates]
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
    digests = Digests()
    full = run_trial("composition-full", candidates, out_dir, train, score, digests)
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
        trial = run_trial(f"composition-halve-{group}", sources, out_dir, train, score, digests)
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
    out_dir, digests = Path(out_dir), Digests()
    kept = list(base)
    steps = []
    best = run_trial("incremental-base", kept, out_dir, train, score, digests)["score"] if kept else None
    for i, candidate in enumerate(candidates):
        name = f"incremental-{i}-{candidate['name']}"
        trial = run_trial(name, kept + [candidate], out_dir, train, score, digests)
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

    def trial_recipe(sources: list[dict]) -> Recipe:
        update = {"data": {**base_stage.data, "sources": sources}, "init_from": "model"}
        if samples is not None:
            update["budget"] = Budget(samples=samples)
        return recipe.model_copy(update={"stages": [base_stage.model_copy(update=update)]})

    def train(sources: list[dict], trial_dir: Path) -> Path:
        return train_recipe(trial_recipe(sources), trial_dir / "train", resume="auto")[0]

    def fingerprint(digests: Digests) -> dict:
        # The recipe as the trial runs it (sources aside: run_trial fingerprints them) and the starting weights.
        spec = trial_recipe([]).model_dump(mode="json")
        dirs = {"path": recipe.model.path, "vision": recipe.model.vision, "llm": recipe.model.llm}
        weights = {key: digests.model(d) for key, d in dirs.items() if d and Path(d).is_dir()}
        return {"recipe": spec, "model": weights}

    train.fingerprint = fingerprint
    return train


def bench_scorer(
    benches: list[str], data_dir: str | Path | None, metric: str = "average", **eval_kwargs
) -> ScoreFn:
    """A ScoreFn running `evaluate_model` on `benches` and returning `metric` (average or a benchmark)."""

    def fingerprint(digests: Digests) -> dict:
        tsvs = {bench: digests.file(resolve_benchmark(bench, data_dir)[1]) for bench in benches}
        return {"benchmarks": tsvs, "metric": metric, **eval_kwargs}

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

    score.fingerprint = fingerprint
    return score
