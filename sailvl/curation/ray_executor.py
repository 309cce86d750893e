"""Ray Data executor: the same pipeline object on a cluster. Cheap steps run as Ray tasks over record
batches, model steps as actor pools (one model replica per GPU); the driver writes the same per-shard
outputs, lineage and done markers as the local executor, so reports, lineage checks and resume agree."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from sailvl.curation.base import Step
from sailvl.curation.config import PipelineConfig
from sailvl.curation.dedup import DUPLICATES_FILE
from sailvl.curation.executors import prepare_run_dir, write_manifest
from sailvl.curation.shards import READ_STEP, Shard, ShardOutput, done_marker, iter_shard, write_json_atomic
from sailvl.data.sample import Sample

OK = ""  # `step` column value of a record still in the pipeline


def _read_rows(item: dict[str, Any], image_root: str | None) -> Iterator[dict[str, Any]]:
    shard = Shard(**item["shard"])
    for offset, rec in iter_shard(shard, image_root):
        if isinstance(rec, tuple):
            yield {"shard": shard.index, "offset": offset, "id": rec[0], "sample": "", "step": READ_STEP,
                   "reason": rec[1]}  # fmt: skip
        else:
            yield {"shard": shard.index, "offset": offset, "id": rec.id, "sample": rec.to_json(), "step": OK,
                   "reason": ""}  # fmt: skip


def apply_step(step: Step, batch: Any) -> Any:
    """Run `step` over the live rows of a pandas batch; rejected rows get their step and reason."""
    batch = batch.copy()
    live = [i for i in range(len(batch)) if batch["step"].iat[i] == OK]
    if not live:
        return batch
    rejected: dict[str, str] = {}
    step.set_sink(lambda rec, name, reason: rejected.__setitem__(rec.id, reason))
    samples = [Sample.from_json(batch["sample"].iat[i]) for i in live]
    kept = {s.id: s for s in step.run(samples)}
    for i in live:
        rid = batch["id"].iat[i]
        if rid in kept:
            batch.iat[i, batch.columns.get_loc("sample")] = kept[rid].to_json()
        else:
            batch.iat[i, batch.columns.get_loc("step")] = step.name
            batch.iat[i, batch.columns.get_loc("reason")] = rejected.get(rid, "dropped")
    return batch


class _StepActor:
    """One replica of a model step (loads the model once in its actor)."""

    def __init__(self, step_blob: bytes):
        self.step = pickle.loads(step_blob)
        self.step.ensure_setup()

    def __call__(self, batch: Any) -> Any:
        return apply_step(self.step, batch)


def _step_task(batch: Any, step_blob: bytes) -> Any:
    step = pickle.loads(step_blob)
    return apply_step(step, batch)


def _signature_batch(batch: Any, step_blob: bytes) -> Any:
    step = pickle.loads(step_blob)
    batch = batch[batch["step"] == OK].copy()
    batch["signature"] = [step.signature(Sample.from_json(s)) or "" for s in batch["sample"]]
    return batch[["shard", "offset", "id", "signature"]]


class RayExecutor:
    """Run a pipeline on Ray Data (`ray.init` is called when Ray is not running yet)."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg

    def _init_ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ex = self.cfg.executor
            kwargs: dict[str, Any] = (
                {"address": ex.ray_address} if ex.ray_address else {"num_cpus": ex.ray_num_cpus}
            )
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # lineage offsets and dedup order must be deterministic
        return ray

    def _dataset(self, ray: Any, shards: list[Shard], steps: list[Step]) -> Any:
        image_root = self.cfg.input.image_root
        items = [{"shard": s.__dict__} for s in shards]
        ds = ray.data.from_items(items, override_num_blocks=max(len(items), 1))
        ds = ds.flat_map(lambda item: list(_read_rows(item, image_root)))
        ex = self.cfg.executor
        gpus = int(ray.cluster_resources().get("GPU", 0))
        for step in steps:
            blob = pickle.dumps(step)
            if step.uses_model:
                replicas = ex.model_replicas or max(gpus, 1)
                ds = ds.map_batches(_StepActor, fn_constructor_args=(blob,), batch_format="pandas",
                                    batch_size=step.batch_size(), concurrency=replicas,
                                    num_gpus=1 if gpus else 0)  # fmt: skip
            else:
                ds = ds.map_batches(
                    _step_task, fn_args=(blob,), batch_format="pandas", batch_size=ex.batch_size
                )
        return ds

    def run(self) -> dict[str, Any]:
        """Run (or resume) the job; returns the manifest."""
        from sailvl.curation.shards import plan_shards

        cfg = self.cfg
        run_dir = prepare_run_dir(cfg)
        ray = self._init_ray()
        shards = plan_shards(cfg.input)
        steps = cfg.build_steps()
        for g, step in enumerate(steps):
            if not step.is_global:
                continue
            state_dir = run_dir / "dedup" / step.name
            step.context = {"state_dir": str(state_dir)}
            if (state_dir / DUPLICATES_FILE).exists():
                continue
            sig_ds = self._dataset(ray, shards, steps[:g]).map_batches(
                _signature_batch, fn_args=(pickle.dumps(step),), batch_format="pandas"
            )
            rows = sorted(sig_ds.take_all(), key=lambda r: (r["shard"], r["offset"]))
            write_json_atomic(
                state_dir / DUPLICATES_FILE, step.resolve((r["id"], r["signature"] or None) for r in rows)
            )
        todo = [s for s in shards if not done_marker(run_dir, s).exists()]
        if todo:
            self._write(self._dataset(ray, todo, steps), todo, steps)
        return write_manifest(cfg, shards)

    def _write(self, ds: Any, todo: list[Shard], steps: list[Step]) -> None:
        cfg = self.cfg
        outputs = {
            s.index: ShardOutput(cfg.run_dir, s, cfg.output.format, cfg.output.write_rejected) for s in todo
        }
        counts: dict[int, dict[str, dict[str, int]]] = {s.index: {} for s in todo}
        for row in ds.iter_rows():
            out = outputs[row["shard"]]
            sample = Sample.from_json(row["sample"]) if row["sample"] else None
            if row["step"] == OK:
                out.keep(sample)
            elif sample is None:
                out.reject(None, row["step"], row["reason"], sample_id=row["id"])
            else:
                out.reject(sample, row["step"], row["reason"])
            if row["step"] != READ_STEP:
                stats = counts[row["shard"]].setdefault(row["step"] or "kept", {})
                stats[row["reason"] or "kept"] = stats.get(row["reason"] or "kept", 0) + 1
        for index, out in outputs.items():
            out.commit({name: {f"rejected:{k}": v for k, v in c.items()} for name, c in counts[index].items()
                        if name != "kept"})  # fmt: skip
