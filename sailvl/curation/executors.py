"""Executors map the job's per-shard routine (`job.ShardWorker`): `LocalExecutor` over a process pool (or
this process), `RayExecutor` over Ray actors; `run_pipeline` picks the one a pipeline names."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from sailvl.curation.config import PipelineConfig
from sailvl.curation.job import MANIFEST_FILE, ShardWorker, failed_shards_error, run_job, user_error
from sailvl.curation.ray_executor import RayExecutor
from sailvl.curation.report import kept_samples
from sailvl.curation.scoring import write_curriculum
from sailvl.curation.shards import write_json_atomic
from sailvl.curation.step import Step
from sailvl.errors import SailvlError

# -- worker-side state: each pool process builds one ShardWorker (models load once per worker) ---------
_WORKER: dict[str, ShardWorker] = {}


def _init_worker(cfg: PipelineConfig, steps: list[Step]) -> None:
    _WORKER["worker"] = ShardWorker(cfg, steps)


def _call_worker(method: str, *args: Any) -> Any:
    return getattr(_WORKER["worker"], method)(*args)


class LocalExecutor:
    """Process pool over input shards (`workers=1` runs in this process). Rerunning resumes: shards
    with a done marker are skipped, unfinished ones are redone from scratch."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.workers = cfg.executor.workers
        self._pool: ProcessPoolExecutor | None = None
        self._local: ShardWorker | None = None

    def map_calls(self, method: str, calls: list[tuple[Any, ...]]) -> list[Any]:
        """`ShardWorker.<method>(*call)` for every call; failures are collected, then raised once."""
        results, errors = [], []
        if self._pool is None:
            if self._local is None:
                self._local = ShardWorker(self.cfg)
            for call in calls:
                try:
                    results.append(getattr(self._local, method)(*call))
                except SailvlError:
                    raise  # a user error: stops the run (see `job.user_error`)
                except Exception as exc:  # noqa: BLE001 - report every failed shard, then raise once
                    errors.append((call, exc))
        else:
            futures = [(call, self._pool.submit(_call_worker, method, *call)) for call in calls]
            for call, fut in futures:
                try:
                    results.append(fut.result())
                except Exception as exc:  # noqa: BLE001
                    if (user := user_error(exc)) is not None:
                        for _, queued in futures:
                            queued.cancel()  # shards not started yet; running ones finish and stay done
                        raise user from None
                    errors.append((call, exc))
        if errors:
            raise failed_shards_error(errors, len(calls)) from errors[0][1]
        return results

    def run(self) -> dict[str, Any]:
        """Run (or resume) the job; returns the manifest (also written to RUN_DIR/manifest.json)."""
        if self.workers == 1:
            return run_job(self.cfg, self.map_calls)
        ctx = multiprocessing.get_context("spawn")  # torch and forked OpenMP pools do not mix
        with ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.cfg, self.cfg.build_steps()),
        ) as pool:
            self._pool = pool
            try:
                return run_job(self.cfg, self.map_calls)
            finally:
                self._pool = None


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run `cfg` with the executor it names, then the curriculum split if configured; returns the manifest."""
    executor = RayExecutor(cfg) if cfg.executor.type == "ray" else LocalExecutor(cfg)
    manifest = executor.run()
    if cfg.curriculum is not None:
        samples = list(kept_samples(cfg.run_dir, cfg.output.format))
        manifest["curriculum"] = write_curriculum(
            samples,
            cfg.curriculum.keys,
            cfg.curriculum.stages,
            cfg.run_dir / "curriculum",
            cfg.curriculum.stratify,
        )
        write_json_atomic(cfg.run_dir / MANIFEST_FILE, manifest)
    return manifest
