"""Ray executor: the job's per-shard routine (`job.ShardWorker`) on Ray actors. Each actor builds the
steps once (a model step's model stays loaded across its shards), reads its shards and writes their kept /
rejected / lineage files and done marker itself, so the driver only schedules and never touches records.
The run dir must be on a filesystem every node sees (as for the inputs)."""

from __future__ import annotations

from typing import Any

from sailvl.curation.config import PipelineConfig
from sailvl.curation.job import ShardWorker, failed_shards_error, run_job, user_error
from sailvl.curation.shards import plan_shards


def ray_worker_count(cfg: PipelineConfig, cluster: dict[str, float], n_shards: int) -> tuple[int, int]:
    """`(actors, gpus per actor)`: one actor per GPU when a step runs a model on a GPU cluster, else one per
    CPU; `executor.model_replicas` overrides the count; never more actors than shards."""
    uses_model = any(step.uses_model for step in cfg.build_steps())
    gpus = int(cluster.get("GPU", 0))
    if uses_model and gpus:
        count, per_actor = gpus, 1
    else:
        count, per_actor = max(int(cluster.get("CPU", 1)), 1), 0
    if uses_model and cfg.executor.model_replicas:
        count = cfg.executor.model_replicas
    return max(1, min(count, n_shards)), per_actor


class RayExecutor:
    """Run a pipeline on Ray actors (`ray.init` is called when Ray is not running yet)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self._actors: list[Any] = []

    def _init_ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ex = self.cfg.executor
            kwargs: dict[str, Any] = (
                {"address": ex.ray_address} if ex.ray_address else {"num_cpus": ex.ray_num_cpus}
            )
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        return ray

    def map_calls(self, method: str, calls: list[tuple[Any, ...]]) -> list[Any]:
        """`ShardWorker.<method>(*call)` for every call on the actor pool, results in call order; a dead or
        failing actor fails only its own calls (raised once at the end: rerun to resume)."""
        import ray
        import ray.exceptions

        # Dispatch: keep every actor busy with one call; hand out the next call when one returns.
        pending: dict[Any, int] = {}
        queue = list(range(len(calls)))
        results: list[Any] = [None] * len(calls)
        errors: list[tuple[tuple[Any, ...], BaseException]] = []
        idle = list(self._actors)
        while queue or pending:
            while queue and idle:
                i = queue.pop(0)
                actor = idle.pop()
                ref = getattr(actor, method).remote(*calls[i])
                pending[ref] = i
                self._owner[ref] = actor
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            i = pending.pop(ref)
            actor = self._owner.pop(ref)
            try:
                results[i] = ray.get(ref)
                idle.append(actor)
            except Exception as exc:  # noqa: BLE001 - a crashed shard; the others go on
                if (user := user_error(exc)) is not None:
                    # A config / input mistake stops the run (`job.user_error`); `run` kills the actors.
                    raise user from None
                errors.append((calls[i], exc))
                if isinstance(exc, ray.exceptions.RayActorError):
                    actor = self._replace(actor)
                idle.append(actor)
        if errors:
            raise failed_shards_error(errors, len(calls)) from errors[0][1]
        return results

    def _replace(self, dead: Any) -> Any:
        """A fresh actor in place of one that died (the job keeps its parallelism)."""
        fresh = self._actor_class.remote(self.cfg, self.cfg.build_steps())
        self._actors[self._actors.index(dead)] = fresh
        return fresh

    def run(self) -> dict[str, Any]:
        """Run (or resume) the job; returns the manifest."""
        ray = self._init_ray()
        count, gpus = ray_worker_count(self.cfg, ray.cluster_resources(), len(plan_shards(self.cfg.input)))
        self._actor_class = ray.remote(num_cpus=1, num_gpus=gpus)(ShardWorker)
        self._actors = [self._actor_class.remote(self.cfg, self.cfg.build_steps()) for _ in range(count)]
        self._owner: dict[Any, Any] = {}
        try:
            return run_job(self.cfg, self.map_calls)
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []
