"""Eval runner: batched prediction with a per-index cache (resumable, sharded across ranks, pinned to the
fingerprint of the settings that shaped it), scoring (LLM judges for MMVet / MathVista), results JSON, averages."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from sailvl.eval.aggregate import score_benchmark, strip_thinking
from sailvl.eval.distributed import EvalShard
from sailvl.eval.fingerprint import Digests, check_fingerprint, read_pins, write_pins
from sailvl.eval.judges import JUDGED_SCORERS, judge_name, vlmevalkit_version
from sailvl.eval.matching import TextJudge
from sailvl.eval.prompts import PROMPT_VERSION, build_prompt, tiles_for
from sailvl.eval.registry import (
    MAX_TILES_PER_SAMPLE,
    OPENCOMPASS_AVERAGE,
    BenchmarkSpec,
    apply_preset,
    get_preset,
    resolve_benchmark,
)
from sailvl.eval.tsv import BenchItem, circular_items, read_benchmark

# predict(items, prompts, max_tiles per image, max_new_tokens) -> one answer per item (greedy).
Predictor = Callable[[list[BenchItem], list[str], int, int], list[str]]

PREDICTIONS_FILE = "predictions.jsonl"
JUDGEMENTS_FILE = "judgements.jsonl"
RESULTS_FILE = "results.json"


def shard_cache_name(shard: EvalShard) -> str:
    """The prediction cache of one rank while a sharded eval runs (merged into PREDICTIONS_FILE after)."""
    return f"predictions.rank{shard.rank}-of-{shard.world_size}.jsonl"


def _iter_items(
    spec: BenchmarkSpec, path: Path, decode_images: bool, limit: int | None
) -> Iterator[BenchItem]:
    items: Iterator[BenchItem] = read_benchmark(path, decode_images=decode_images)
    if limit is not None:
        items = (it for i, it in enumerate(items) if i < limit)
    if spec.scorer == "mcq_circular":
        items = circular_items(items)
    return items


def read_cache(path: Path) -> dict[str, object]:
    """index -> cached value from a JSONL cache; a torn last line (killed mid-write) is ignored."""
    cache: dict[str, object] = {}
    if not path.is_file():
        return cache
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            cache[str(record["index"])] = record["value"]
    return cache


def append_cache(path: Path, records: list[tuple[str, object]]) -> None:
    """Append index/value records and fsync, so a crash loses at most the batch in flight."""
    with open(path, "a", encoding="utf-8") as handle:
        for index, value in records:
            handle.write(json.dumps({"index": index, "value": value}, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def predict_benchmark(
    spec: BenchmarkSpec,
    path: Path,
    bench_dir: Path,
    predict: Predictor,
    batch_size: int = 8,
    max_tiles: int | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    shard: EvalShard = EvalShard(),
) -> dict[str, str] | None:
    """Run `predict` on every item not yet in `bench_dir/predictions.jsonl`, batch by batch.

    Items are streamed from the TSV; a batch holds items that share one tile budget. Returns all
    predictions (cached and new) by str(index). `progress(n)` is called with each batch's size.
    With several ranks, each predicts the items `shard` owns into its own cache file; rank 0 merges
    them into predictions.jsonl and returns all predictions, other ranks return None."""
    main_cache = bench_dir / PREDICTIONS_FILE
    cache_path = main_cache if shard.world_size == 1 else bench_dir / shard_cache_name(shard)
    cached = read_cache(main_cache)
    if cache_path != main_cache:
        cached.update(read_cache(cache_path))
    owned: dict[str, None] = {}
    pending: list[tuple[BenchItem, str]] = []
    pending_tiles: int | None = None

    def flush() -> None:
        items = [it for it, _ in pending]
        answers = predict(items, [p for _, p in pending], pending_tiles, spec.max_new_tokens)
        if len(answers) != len(items):
            raise RuntimeError(f"predictor returned {len(answers)} answers for {len(items)} prompts")
        records = [(str(it.index), str(ans)) for it, ans in zip(items, answers, strict=True)]
        append_cache(cache_path, records)
        cached.update(records)
        if progress is not None:
            progress(len(items))
        pending.clear()

    for position, item in enumerate(_iter_items(spec, path, decode_images=True, limit=limit)):
        if not shard.owns(position):
            continue
        owned[str(item.index)] = None
        if str(item.index) in cached:
            continue
        tiles = tiles_for(spec, item, max_tiles, MAX_TILES_PER_SAMPLE)
        if pending and (tiles != pending_tiles or len(pending) >= batch_size):
            flush()
        pending_tiles = tiles
        pending.append((item, build_prompt(spec, item)))
    if pending:
        flush()
    if shard.world_size == 1:
        return {k: str(v) for k, v in cached.items()}
    merged = shard.gather({k: str(cached[k]) for k in owned})
    if merged is not None:
        known = read_cache(main_cache)
        append_cache(main_cache, [(k, v) for k, v in merged.items() if k not in known])
        known.update(merged)
        cache_path.unlink(missing_ok=True)
        for rank in range(1, shard.world_size):
            (bench_dir / shard_cache_name(EvalShard(rank, shard.world_size))).unlink(missing_ok=True)
        return {k: str(v) for k, v in known.items()}
    return None


def _judge_benchmark(
    spec: BenchmarkSpec,
    items: list[BenchItem],
    predictions: dict[str, str],
    bench_dir: Path,
    judge: TextJudge,
) -> dict:
    """Judge each answer once (cached in judgements.jsonl, so a rerun resumes) and aggregate.

    A cached judgement counts only if the same judge gave it to the same answer; others are redone."""
    judge_one, aggregate = JUDGED_SCORERS[spec.scorer]
    name = judge_name(judge)
    cache_path = bench_dir / JUDGEMENTS_FILE
    cached = read_cache(cache_path)
    for item in items:
        key = str(item.index)
        record = cached.get(key)
        answer = predictions.get(key, "")
        if not isinstance(record, dict) or record.get("judge") != name or record.get("prediction") != answer:
            record = {**judge_one(judge, item, answer), "judge": name, "prediction": answer}
            append_cache(cache_path, [(key, record)])
            cached[key] = record
    return aggregate(items, cached)


def evaluate_benchmark(
    spec: BenchmarkSpec,
    path: Path,
    out_dir: Path,
    predict: Predictor,
    batch_size: int = 8,
    max_tiles: int | None = None,
    judge: TextJudge | None = None,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    matching: str = "exact",
    seed: int = 0,
    shard: EvalShard = EvalShard(),
) -> dict | None:
    """Predict (resuming from the cache) and score one benchmark; writes `out_dir/<name>/result.json`.

    `judge` grades MMVet / MathVista (unscored without one) and is handed to `score_benchmark` for the
    VLMEvalKit judge fallback of `matching`. Under sharding only rank 0 scores; other ranks return None."""
    bench_dir = out_dir / spec.name
    if spec.needs_judge and judge is None:
        return {
            "benchmark": spec.name,
            "status": "needs_judge",
            "message": f"{spec.name} is graded by an LLM judge; pass --judge openai:MODEL[@URL] or DIR to score it",
        }
    bench_dir.mkdir(parents=True, exist_ok=True)
    predictions = predict_benchmark(
        spec, path, bench_dir, predict, batch_size, max_tiles, limit, progress, shard
    )
    if predictions is None:
        return None
    items = list(_iter_items(spec, path, decode_images=False, limit=limit))
    if spec.scorer in JUDGED_SCORERS:
        answers, think_counts = strip_thinking(items, predictions)
        result = {"benchmark": spec.name, "task": spec.task, "scorer": spec.scorer, **think_counts}
        result.update(_judge_benchmark(spec, items, answers, bench_dir, judge))
    else:
        result = score_benchmark(spec, items, predictions, matching=matching, judge=judge, seed=seed)
        result.setdefault("judged", 0)  # keys of A1's score_benchmark; absent before the merge
        result.setdefault("extraction_failed", 0)
    result["status"] = "scored"
    result["max_tiles"] = max_tiles if max_tiles is not None else spec.max_tiles
    result["max_new_tokens"] = spec.max_new_tokens
    result["tsv"] = str(path)
    (bench_dir / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def summarize(benchmarks: dict[str, dict]) -> dict:
    """Averages over scored benchmarks: `average` (all scored), `opencompass_average` over the
    OpenCompass set present, with `opencompass_partial` and the list of missing ones.

    Scores read with `matching="lenient"` are not VLMEvalKit's numbers: they count in `average` but
    never in `opencompass_average` (they are listed as missing there)."""
    scored = {name: r["score"] for name, r in benchmarks.items() if r.get("status") == "scored"}
    comparable = {n for n, r in benchmarks.items() if n in scored and r.get("matching", "exact") == "exact"}
    present = [name for name in OPENCOMPASS_AVERAGE if name in comparable]
    missing = [name for name in OPENCOMPASS_AVERAGE if name not in comparable]
    return {
        "average": round(sum(scored.values()) / len(scored), 4) if scored else None,
        "opencompass_average": round(sum(scored[n] for n in present) / len(present), 4) if present else None,
        "opencompass_partial": bool(missing),
        "opencompass_missing": missing,
    }


def prediction_fingerprint(
    spec: BenchmarkSpec,
    path: Path,
    preset: str,
    max_tiles: int | None,
    model: dict | None,
    predictor_settings: dict | None,
    digests: Digests,
) -> dict:
    """What shapes one benchmark's answers. Not in it: --limit (it picks items, not their answers), batch
    size and device (numerics only), the judge (judgements carry their judge and the answer they graded)."""
    fingerprint = {
        "preset": preset,
        "max_tiles": max_tiles if max_tiles is not None else spec.max_tiles,
        "max_new_tokens": spec.max_new_tokens,
        "prompt_version": PROMPT_VERSION,
        "benchmark_file": digests.file(path),
        **(predictor_settings or {}),
    }
    if model is not None:
        fingerprint["model"] = model
    return fingerprint


def _has_cache(bench_dir: Path) -> bool:
    names = (JUDGEMENTS_FILE, "result.json")
    return bench_dir.is_dir() and any(
        p.name in names or (p.name.startswith("predictions") and p.suffix == ".jsonl")
        for p in bench_dir.iterdir()
    )


def pin_predictions(
    benches: list[str],
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    preset: str = "vlmevalkit",
    max_tiles: int | None = None,
    max_new_tokens: int | None = None,
    judged: bool = False,
    model_dir: str | Path | None = None,
    predictor_settings: dict | None = None,
    shard: EvalShard = EvalShard(),
) -> list[tuple[BenchmarkSpec, Path]]:
    """Check every benchmark's cache in `out_dir` against this run's fingerprint, then pin it; returns the
    benchmarks as (spec with the preset applied, TSV path). Cheap enough to call before the model loads.

    Every rank checks for itself, so none appends to a cache rank 0 refuses; only rank 0 writes. Content
    digests make the check agree across nodes that hold their own copy of the model. Benchmarks that need a
    judge are left out without one (nothing is predicted for them)."""
    out_dir, inference = Path(out_dir), get_preset(preset)
    resolved = [resolve_benchmark(b, data_dir) for b in benches]  # fail fast on a missing file
    resolved = [(apply_preset(spec, inference, max_new_tokens), path) for spec, path in resolved]
    digests = Digests()
    pins = read_pins(out_dir)
    digests.learn(pins.get("digests"))
    model = digests.model(model_dir) if model_dir is not None else None
    pinned = {}
    for spec, path in resolved:
        if spec.needs_judge and not judged:
            continue
        bench_dir = out_dir / spec.name
        fingerprint = prediction_fingerprint(
            spec, path, inference.name, max_tiles, model, predictor_settings, digests
        )
        stored = pins["fingerprints"].get(spec.name)
        hint = f"use another --out or delete {bench_dir}"
        check_fingerprint(bench_dir, stored, fingerprint, "predictions", _has_cache(bench_dir), hint)
        pinned[spec.name] = fingerprint
    if shard.is_main:
        write_pins(out_dir, pinned, digests)
    return resolved


def run_eval(
    benches: list[str],
    out_dir: str | Path,
    predict: Predictor,
    data_dir: str | Path | None = None,
    batch_size: int = 8,
    max_tiles: int | None = None,
    judge: TextJudge | None = None,
    limit: int | None = None,
    model_info: dict | None = None,
    progress: Callable[[str, int], None] | None = None,
    preset: str = "vlmevalkit",
    max_new_tokens: int | None = None,
    matching: str = "exact",
    seed: int = 0,
    shard: EvalShard = EvalShard(),
    model_dir: str | Path | None = None,
    predictor_settings: dict | None = None,
) -> dict | None:
    """Evaluate `predict` on each benchmark (a registered name under `data_dir`, or a TSV path).

    Writes `out_dir/<bench>/predictions.jsonl` (the resumable cache), `out_dir/<bench>/result.json`
    and `out_dir/results.json`, and returns the latter's content. `model_info` (model path,
    tokens_seen, samples_seen, step, msac) is copied into the results for `sailvl scaling fit`.
    `preset` names the per-benchmark tile caps / max_new_tokens (registry.PRESETS); `max_tiles` and
    `max_new_tokens` override them. Scores are in percent (0-100); MME and OCRBench are normalised
    to 0-100 for the averages. Under sharding, rank 0 returns the results and other ranks None.

    Each benchmark's predictions are pinned to a fingerprint (`prediction_fingerprint`: the files of
    `model_dir`, `predictor_settings` such as msac and backend, preset, tiles, max_new_tokens, prompt
    version, benchmark file); a rerun with another one into the same `out_dir` raises SailvlError naming
    what changed, before anything is predicted."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inference = get_preset(preset)
    resolved = pin_predictions(
        benches, out_dir, data_dir, preset, max_tiles, max_new_tokens, judge is not None, model_dir,
        predictor_settings, shard,
    )  # fmt: skip
    results: dict = dict(model_info or {})
    results.update(
        preset=inference.name,
        matching=matching,
        judge=judge_name(judge),
        vlmevalkit_version=vlmevalkit_version(),
        seed=seed,
        benchmarks={},
    )
    for spec, path in resolved:
        bench_progress = (lambda n, name=spec.name: progress(name, n)) if progress else None
        results["benchmarks"][spec.name] = evaluate_benchmark(
            spec, path, out_dir, predict, batch_size, max_tiles, judge, limit, bench_progress,
            matching, seed, shard,
        )  # fmt: skip
    if not shard.is_main:
        return None
    results.update(summarize(results["benchmarks"]))
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def results_table(results: dict):
    """A rich Table of a results dict: one row per benchmark plus the averages."""
    from rich.table import Table

    table = Table(title="sailvl eval")
    for column in ("benchmark", "n", "score", "chance", "note"):
        table.add_column(column, justify="left" if column in ("benchmark", "note") else "right")
    for name, r in results["benchmarks"].items():
        if r.get("status") != "scored":
            table.add_row(name, "-", "-", "-", r.get("message", r.get("status", "")))
            continue
        chance = "-" if r.get("chance") is None else f"{r['chance']:.1f}"
        note = f"MME total {r['mme_total']:.1f}" if "mme_total" in r else ""
        note = note or (f"OCRBench {r['ocrbench_score']}" if "ocrbench_score" in r else "")
        note = note or (
            f"{r['answers_with_think']} answers after a think trace" if r.get("answers_with_think") else ""
        )
        table.add_row(name, str(r["n"]), f"{r['score']:.2f}", chance, note)
    if results.get("average") is not None:
        table.add_row("average", "", f"{results['average']:.2f}", "", "all scored benchmarks")
    if results.get("opencompass_average") is not None:
        flag = (
            "partial: missing " + ", ".join(results["opencompass_missing"])
            if results["opencompass_partial"]
            else ""
        )
        table.add_row("OpenCompass avg", "", f"{results['opencompass_average']:.2f}", "", flag)
    return table
