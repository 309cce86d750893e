"""Executors: run a pipeline over its input shards. `LocalExecutor` uses a process pool with completion
markers and resume; global steps (dedup) get a signature pass and a job-wide resolution first."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sailvl.curation.base import Step
from sailvl.curation.config import PipelineConfig
from sailvl.curation.dedup import DUPLICATES_FILE
from sailvl.curation.shards import (
    READ_STEP,
    Shard,
    ShardOutput,
    done_marker,
    iter_shard,
    plan_shards,
    write_json_atomic,
)
from sailvl.errors import SailvlError

CONFIG_FILE = "pipeline.json"
MANIFEST_FILE = "manifest.json"


def config_fingerprint(cfg: PipelineConfig) -> str:
    """Hash of everything that changes results (not the executor), to refuse resuming a different job."""
    data = cfg.model_dump(mode="json", exclude={"executor"})
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def prepare_run_dir(cfg: PipelineConfig) -> Path:
    """Create the run dir and pin the config; a run dir holding a different pipeline is an error."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    pinned = run_dir / CONFIG_FILE
    fingerprint = config_fingerprint(cfg)
    if pinned.exists():
        old = json.loads(pinned.read_text())
        if old.get("fingerprint") != fingerprint:
            raise SailvlError(
                f"run dir {run_dir} holds a different pipeline (fingerprint {old.get('fingerprint')}); "
                "use a new output_dir or delete it"
            )
    else:
        write_json_atomic(pinned, {"fingerprint": fingerprint, "config": cfg.model_dump(mode="json")})
    return run_dir


def stream_records(
    shard: Shard, image_root: str | None, steps: list[Step], on_unreadable: Any
) -> Iterator[Any]:
    """Records of `shard` through `steps` (a lazy chain); unreadable records go to `on_unreadable`."""

    def read() -> Iterator[Any]:
        for _, item in iter_shard(shard, image_root):
            if isinstance(item, tuple):
                on_unreadable(*item)
            else:
                yield item

    stream: Iterator[Any] = read()
    for step in steps:
        step.ensure_setup()
        stream = step.run(stream, rank=shard.index, world_size=shard.total)
    return stream


def process_shard(cfg: PipelineConfig, steps: list[Step], shard: Shard) -> dict[str, Any]:
    """Run every step over one shard and commit its output; returns the shard's counts."""
    out = ShardOutput(cfg.run_dir, shard, cfg.output.format, cfg.output.write_rejected)
    for step in steps:
        step.stats.clear()
        step.set_sink(out.reject)
    stream = stream_records(
        shard,
        cfg.input.image_root,
        steps,
        lambda rid, reason: out.reject(None, READ_STEP, reason, sample_id=rid),
    )
    for record in stream:
        out.keep(record)
    stats = {step.name: dict(step.stats) for step in steps}
    out.commit(stats)
    return {"shard": shard.name, "kept": out.n_kept, "rejected": out.n_rejected}


def signature_shard(cfg: PipelineConfig, steps: list[Step], g: int, shard: Shard) -> list[list[Any]]:
    """Signature pass of global step `g` over one shard: `[id, signature]` in shard order."""
    for step in steps[:g]:
        step.set_sink(None)
    dedup = steps[g]
    return [
        [r.id, dedup.signature(r)] for r in stream_records(shard, cfg.input.image_root, steps[:g], _ignore)
    ]


def _ignore(*_: Any) -> None:
    return None


# -- worker-side state: each pool process builds its steps once (models load once per worker) --------
_WORKER: dict[str, Any] = {}


def _init_worker(cfg_json: str, contexts: list[dict[str, Any]]) -> None:
    cfg = PipelineConfig.model_validate_json(cfg_json)
    steps = cfg.build_steps()
    for step, ctx in zip(steps, contexts, strict=True):
        step.context = dict(ctx)
    _WORKER.update(cfg=cfg, steps=steps)


def _worker_process(shard: Shard) -> dict[str, Any]:
    return process_shard(_WORKER["cfg"], _WORKER["steps"], shard)


def _worker_signature(g: int, shard: Shard) -> list[list[Any]]:
    return signature_shard(_WORKER["cfg"], _WORKER["steps"], g, shard)


class LocalExecutor:
    """Process pool over input shards (`workers=1` runs in this process). Rerunning resumes: shards
    with a done marker are skipped, unfinished ones are redone from scratch."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.workers = cfg.executor.workers

    def _map(self, fn: Any, items: list[Any], contexts: list[dict[str, Any]]) -> list[Any]:
        """Apply `fn` (a `_worker_*` function) to items; failures are collected, not fatal to the rest."""
        results, errors = [], []
        if self.workers == 1 or len(items) <= 1:
            _init_worker(self.cfg.model_dump_json(), contexts)
            for item in items:
                try:
                    results.append(fn(*item))
                except Exception as exc:  # noqa: BLE001 - report every failed shard, then raise once
                    errors.append((item, exc))
                    if isinstance(exc, SailvlError):
                        raise
        else:
            ctx = multiprocessing.get_context("spawn")  # torch and forked OpenMP pools do not mix
            with ProcessPoolExecutor(
                self.workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.cfg.model_dump_json(), contexts),
            ) as pool:
                futures = [(item, pool.submit(fn, *item)) for item in items]
                for item, fut in futures:
                    try:
                        results.append(fut.result())
                    except Exception as exc:  # noqa: BLE001
                        errors.append((item, exc))
        if errors:
            item, exc = errors[0]
            raise SailvlError(
                f"{len(errors)} of {len(items)} shards failed (first: {item[-1].name}: {type(exc).__name__}: {exc}); "
                "rerun the same command to resume"
            ) from exc
        return results

    def run(self) -> dict[str, Any]:
        """Run (or resume) the job; returns the manifest (also written to RUN_DIR/manifest.json)."""
        cfg = self.cfg
        run_dir = prepare_run_dir(cfg)
        shards = plan_shards(cfg.input)
        steps = cfg.build_steps()
        contexts: list[dict[str, Any]] = [{} for _ in steps]
        for g, step in enumerate(steps):
            if not step.is_global:
                continue
            state_dir = run_dir / "dedup" / step.name
            contexts[g] = {"state_dir": str(state_dir)}
            if (state_dir / DUPLICATES_FILE).exists():
                continue
            per_shard = self._map(_worker_signature, [(g, s) for s in shards], contexts)
            signatures = [tuple(pair) for shard_sigs in per_shard for pair in shard_sigs]
            write_json_atomic(state_dir / DUPLICATES_FILE, step.resolve(signatures))
        todo = [s for s in shards if not done_marker(run_dir, s).exists()]
        self._map(_worker_process, [(s,) for s in todo], contexts)
        return write_manifest(cfg, shards)


def write_manifest(cfg: PipelineConfig, shards: list[Shard]) -> dict[str, Any]:
    """Summarise the finished job: kept shards, counts, per-step stats (summed over shards)."""
    run_dir = cfg.run_dir
    totals: dict[str, Counter[str]] = {}
    outputs, kept, rejected = [], 0, 0
    for shard in shards:
        marker = json.loads(done_marker(run_dir, shard).read_text())
        kept += marker["kept"]
        rejected += marker["rejected"]
        outputs.append({"path": f"kept/{shard.name}" + _suffix(cfg.output.format), "records": marker["kept"]})
        for name, counts in marker["stats"].items():
            totals.setdefault(name, Counter()).update(counts)
    manifest = {
        "name": cfg.name,
        "format": cfg.output.format,
        "input_records": kept + rejected,
        "kept": kept,
        "rejected": rejected,
        "shards": outputs,
        "steps": {name: dict(c) for name, c in totals.items()},
    }
    write_json_atomic(run_dir / MANIFEST_FILE, manifest)
    return manifest


def _suffix(fmt: str) -> str:
    return {"jsonl": ".jsonl", "webdataset": ".tar", "parquet": ".parquet"}[fmt]


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run `cfg` with the executor it names, then the curriculum split if configured; returns the manifest."""
    if cfg.executor.type == "ray":
        from sailvl.curation.ray_executor import RayExecutor

        manifest = RayExecutor(cfg).run()
    else:
        manifest = LocalExecutor(cfg).run()
    if cfg.curriculum is not None:
        from sailvl.curation.report import kept_samples
        from sailvl.curation.scoring import write_curriculum

        samples = list(kept_samples(cfg.run_dir, cfg.output.format))
        manifest["curriculum"] = write_curriculum(
            samples, cfg.curriculum.keys, cfg.curriculum.stages, cfg.run_dir / "curriculum"
        )
        write_json_atomic(cfg.run_dir / MANIFEST_FILE, manifest)
    return manifest
