"""SFT quality scoring (task difficulty, data complexity, image-text relevance) and the curriculum split
into stages whose means rise on every score, written as separate sources for a training recipe."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from sailvl.curation.judge_parse import parse_score
from sailvl.curation.records import caption_of, prompt_of
from sailvl.curation.step import register_step
from sailvl.curation.vlm import ModelStep, ModelStepParams, load_model_fns
from sailvl.data.writers import write_jsonl
from sailvl.errors import SailvlError

# Judge prompts for the three SFT scores (SPEC 2: the published prompts are UNCONFIRMED).
DEFAULT_SCORE_PROMPTS = {
    "difficulty": "<image>\nQuestion: {question}\nAnswer: {answer}\nHow hard is this task for a vision-language "
    "model, from 1 (trivial) to 5 (very hard)? Answer with one number.",
    "complexity": "<image>\nQuestion: {question}\nAnswer: {answer}\nHow complex is this sample (reasoning steps, "
    "detail), from 1 to 5? Answer with one number.",
    "relevance": "<image>\nQuestion: {question}\nAnswer: {answer}\nHow much does answering depend on the image, "
    "from 1 (not at all) to 5 (entirely)? Answer with one number.",
}


class SftScoringParams(ModelStepParams):
    keys: list[str] = Field(
        default_factory=lambda: ["difficulty", "complexity", "relevance"], description="Scores to attach."
    )
    prompts: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SCORE_PROMPTS),
        description="Judge prompt per key; `{question}` and `{answer}` are replaced.",
    )
    use_metadata: bool = Field(True, description="Take a score from a numeric metadata field when present.")
    max_new_tokens: int = Field(8, ge=1, description="Judges answer in a word.")


@register_step("sft_scoring")
class SftScoring(ModelStep):
    """Attach numeric `metadata[key]` for every key; the judge model loads only if a field is missing."""

    Params = SftScoringParams

    def setup(self) -> None:
        pass  # the judge loads on first need: metadata-scored sets never touch a model

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: SftScoringParams = self.params  # type: ignore[assignment]
        scores: list[dict[str, float]] = [{} for _ in records]
        for key in p.keys:
            missing = []
            for i, r in enumerate(records):
                value = r.metadata.get(key)
                if p.use_metadata and isinstance(value, int | float) and not isinstance(value, bool):
                    scores[i][key] = float(value)
                else:
                    missing.append(i)
            if not missing:
                continue
            if key not in p.prompts:
                raise SailvlError(
                    f"sft_scoring has no prompt for score {key!r} and some records lack that field"
                )
            if self.generate_fn is None:
                self.generate_fn, self.score_fn = load_model_fns(p)
            prompts = [
                p.prompts[key]
                .replace("{question}", prompt_of(records[i]))
                .replace("{answer}", caption_of(records[i]))
                for i in missing
            ]
            for i, answer in zip(missing, self.ask([records[i] for i in missing], prompts), strict=True):
                value = parse_score(answer)
                if value is not None:
                    scores[i][key] = float(value)
        results: list[Any] = []
        for record, got in zip(records, scores, strict=True):
            if len(got) < len(p.keys):
                results.append("score_unparseable")
                continue
            record.metadata = {**record.metadata, **got}
            results.append(record)
        return results


def _ranks(column: np.ndarray) -> np.ndarray:
    order = np.argsort(column, kind="stable")
    ranks = np.empty(len(column))
    ranks[order] = np.arange(len(column))
    # Ties share their average rank, so equal scores never push one sample ahead of another.
    for value in np.unique(column):
        mask = column == value
        ranks[mask] = ranks[mask].mean()
    return ranks / max(len(column) - 1, 1)


def stage_means(stages: list[list[Any]], keys: list[str]) -> list[dict[str, float]]:
    """Mean of each score per stage."""
    return [{k: float(np.mean([s.metadata[k] for s in stage])) for k in keys} for stage in stages]


def _rising(ordered_values: np.ndarray, bounds) -> np.ndarray:
    """Per key: do the stage means (stages cut at `bounds` of the ordered values) strictly rise?"""
    means = np.array([ordered_values[bounds[k] : bounds[k + 1]].mean(axis=0) for k in range(len(bounds) - 1)])
    return (np.diff(means, axis=0) > 0).all(axis=0)


def _uneven_bounds(ordered_values: np.ndarray, n_stages: int, grid: int = 20) -> list[int] | None:
    """Stage boundaries on a 1/grid lattice (each stage >= 1/grid of the data) under which every key rises,
    maximising the smallest stage; None when there is none."""
    from itertools import combinations

    n = len(ordered_values)
    best, best_size = None, 0
    for cut in combinations(range(1, grid), n_stages - 1):
        bounds = [0, *[round(n * c / grid) for c in cut], n]
        smallest = min(b - a for a, b in zip(bounds, bounds[1:], strict=False))
        if smallest > best_size and _rising(ordered_values, bounds).all():
            best, best_size = bounds, smallest
    return best


def split_curriculum(
    samples: list[Any], keys: list[str], n_stages: int, max_rounds: int = 30
) -> list[list[Any]]:
    """Split into `n_stages` stages (easiest first) whose means strictly rise on every key.

    Samples are ordered by a weighted sum of per-key ranks; while some key does not rise, its weight is
    doubled. If no weighting works with equal-size stages, the boundaries move (uneven stage sizes).
    Raises SailvlError when nothing works (e.g. a key is constant or too few samples).
    """
    if len(samples) < n_stages:
        raise SailvlError(f"cannot split {len(samples)} samples into {n_stages} curriculum stages")
    for key in keys:
        bad = [s.id for s in samples if not isinstance(s.metadata.get(key), int | float)]
        if bad:
            raise SailvlError(f"sample {bad[0]} has no numeric '{key}' score; run the sft_scoring step first")
    values = np.array([[float(s.metadata[k]) for k in keys] for s in samples])
    ranks = np.stack([_ranks(values[:, j]) for j in range(len(keys))], axis=1)
    weights = np.ones(len(keys))
    equal = np.linspace(0, len(samples), n_stages + 1).round().astype(int)
    for _ in range(max_rounds):
        order = np.lexsort((np.arange(len(samples)), ranks @ weights))
        rising = _rising(values[order], equal)
        if rising.all():
            return [[samples[i] for i in order[equal[k] : equal[k + 1]]] for k in range(n_stages)]
        weights[~rising] *= 2.0
    # Equal sizes fail when one score is mostly tied (e.g. 90% of questions at difficulty 1): keep the
    # balanced-rank order and move the stage boundaries instead, preferring the most even sizes.
    order = np.lexsort((np.arange(len(samples)), ranks.sum(axis=1)))
    bounds = _uneven_bounds(values[order], n_stages)
    if bounds is not None:
        return [[samples[i] for i in order[bounds[k] : bounds[k + 1]]] for k in range(n_stages)]
    raise SailvlError(f"no split into {n_stages} stages rises on all of {', '.join(keys)}; try fewer stages")


def split_stratified(
    samples: list[Any], keys: list[str], n_stages: int, field: str
) -> tuple[list[list[Any]], dict[str, str]]:
    """`split_curriculum` within each value of the metadata `field` (e.g. the task), stage K being the union of
    every group's stage K (groups in sorted order): each stage keeps every group's share of the data, so a
    curriculum by score does not also become an order by task. Every group's own stage means rise on each key
    that varies within the group (a key constant in a group, like the task-level difficulty of a synthetic
    world's colour questions, cannot rise there and orders nothing within it).

    A group that cannot be split so (too few records, nothing varies, no rising split) is cut in order of its
    summed scores into near-equal parts instead, and returned with the reason: ({value: reason})."""
    groups: dict[str, list[Any]] = {}
    for sample in samples:
        value = sample.metadata.get(field)
        if value is None:
            raise SailvlError(f"sample {sample.id} has no '{field}' field to stratify the curriculum by")
        groups.setdefault(str(value), []).append(sample)
    stages: list[list[Any]] = [[] for _ in range(n_stages)]
    unordered: dict[str, str] = {}
    for value in sorted(groups):
        group = groups[value]
        varying = [k for k in keys if len({s.metadata.get(k) for s in group}) > 1]
        try:
            if not varying:
                raise SailvlError(f"none of {', '.join(keys)} varies within it")
            parts = split_curriculum(group, varying, n_stages)
        except SailvlError as exc:
            unordered[value] = str(exc)
            ranked = sorted(group, key=lambda s: sum(float(s.metadata.get(k) or 0) for k in keys))
            bounds = np.linspace(0, len(ranked), n_stages + 1).round().astype(int)
            if len(ranked) < n_stages:  # one record each to the first stages
                bounds = np.minimum(np.arange(n_stages + 1), len(ranked))
            parts = [ranked[bounds[k] : bounds[k + 1]] for k in range(n_stages)]
        for stage, part in zip(stages, parts, strict=True):
            stage.extend(part)
    return stages, unordered


def write_curriculum(
    samples: list[Any], keys: list[str], n_stages: int, out_dir: str | Path, stratify: str | None = None
) -> dict[str, Any]:
    """Write `stage-K.jsonl` per stage, `curriculum.json` (sizes and score means per stage, and per `stratify`
    value its records per stage) and `sources.yaml` (per stage, a `sources:` list in the training recipe's
    data-source schema). `stratify`: split within each value of this metadata field (`split_stratified`)."""
    import yaml

    out_dir = Path(out_dir)
    unordered: dict[str, str] = {}
    if stratify is None:
        stages = split_curriculum(samples, keys, n_stages)
    else:
        stages, unordered = split_stratified(samples, keys, n_stages, stratify)
    means = stage_means(stages, keys)
    entries, recipe = [], {}
    for k, stage in enumerate(stages, start=1):
        path = out_dir / f"stage-{k}.jsonl"
        write_jsonl(stage, path)
        source = {"path": str(path.resolve()), "format": "jsonl", "name": f"curriculum-stage-{k}"}
        entries.append({**source, "records": len(stage), "means": means[k - 1]})
        recipe[f"stage-{k}"] = {"sources": [source]}
    summary: dict[str, Any] = {"keys": keys, "stages": entries}
    if stratify is not None:
        summary["stratify"] = stratify
        summary["unordered_groups"] = unordered  # cut by summed scores: no split rose within them
        for entry, stage in zip(entries, stages, strict=True):
            entry["per_group"] = dict(sorted(Counter(str(s.metadata[stratify]) for s in stage).items()))
    (out_dir / "curriculum.json").write_text(json.dumps(summary, indent=1))
    (out_dir / "sources.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return summary
