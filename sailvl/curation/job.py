"""A curation job, independent of where it runs: planning, the run dir, the global (dedup) pass, the one
per-shard routine (`ShardWorker`) and the manifest. Executors only map `ShardWorker` calls over shards
(datatrove's `run_for_rank`), so their outputs, lineage and stats cannot differ."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sailvl.curation.config import PipelineConfig
from sailvl.curation.dedup import DUPLICATES_FILE
from sailvl.curation.shards import (
    FORMAT_EXT,
    READ_STEP,
    Shard,
    ShardOutput,
    done_marker,
    iter_shard,
    plan_shards,
    write_json_atomic,
)
from sailvl.curation.step import Step
from sailvl.errors import SailvlError

CONFIG_FILE = "pipeline.json"
MANIFEST_FILE = "manifest.json"

# What an executor provides: `map_calls(method, calls)` runs `getattr(worker, method)(*call)` for every
# call on its `ShardWorker`s and returns the results in call order (raising once if any failed).
MapCalls = Callable[[str, list[tuple[Any, ...]]], list[Any]]


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


def step_contexts(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Job-level facts each step gets on every worker (global steps: where their resolution lives)."""
    return [
        {"state_dir": str(cfg.run_dir / "dedup" / step.name)} if step.is_global else {}
        for step in cfg.build_steps()
    ]


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


def _ignore(*_: Any) -> None:
    return None


class ShardWorker:
    """The per-shard routine. One per worker process / Ray actor: it builds the steps once, so model
    steps keep their model loaded across every shard the worker gets. Writes its own outputs."""

    def __init__(self, cfg: PipelineConfig, steps: list[Step] | None = None):
        # Executors ship `steps` pickled (config only, see `Step.__getstate__`): unpickling imports each
        # step's module, so steps registered outside sailvl (plug-ins, tests) resolve on workers too.
        self.cfg = cfg
        self.steps: list[Step] = steps if steps is not None else cfg.build_steps()
        for step, ctx in zip(self.steps, step_contexts(self.cfg), strict=True):
            step.context = ctx

    def signatures(self, g: int, shard: Shard) -> list[list[Any]]:
        """Signature pass of global step `g` over one shard: `[id, signature]` in shard order."""
        for step in self.steps[:g]:
            step.set_sink(None)
        dedup = self.steps[g]
        stream = stream_records(shard, self.cfg.input.image_root, self.steps[:g], _ignore)
        return [[r.id, dedup.signature(r)] for r in stream]

    def process(self, shard: Shard) -> dict[str, Any]:
        """Run every step over one shard and commit its kept / rejected / lineage files and done marker."""
        cfg = self.cfg
        out = ShardOutput(cfg.run_dir, shard, cfg.output.format, cfg.output.write_rejected)
        for step in self.steps:
            step.stats.clear()
            step.set_sink(out.reject)
        stream = stream_records(
            shard,
            cfg.input.image_root,
            self.steps,
            lambda rid, reason: out.reject(None, READ_STEP, reason, sample_id=rid),
        )
        for record in stream:
            out.keep(record)
        out.commit({step.name: dict(step.stats) for step in self.steps})
        return {"shard": shard.name, "kept": out.n_kept, "rejected": out.n_rejected}


def run_job(cfg: PipelineConfig, map_calls: MapCalls) -> dict[str, Any]:
    """Run (or resume) `cfg` with an executor's `map_calls`: the global pass of each global step (once:
    its resolution is kept in the run dir), then every shard without a done marker; returns the manifest."""
    run_dir = prepare_run_dir(cfg)
    shards = plan_shards(cfg.input)
    steps = cfg.build_steps()
    for g, (step, ctx) in enumerate(zip(steps, step_contexts(cfg), strict=True)):
        duplicates = Path(ctx.get("state_dir", "")) / DUPLICATES_FILE
        if not step.is_global or duplicates.exists():
            continue
        per_shard = map_calls("signatures", [(g, s) for s in shards])
        write_json_atomic(duplicates, step.resolve(tuple(p) for sigs in per_shard for p in sigs))
    todo = [s for s in shards if not done_marker(run_dir, s).exists()]
    if todo:
        map_calls("process", [(s,) for s in todo])
    return write_manifest(cfg, shards)


def user_error(exc: BaseException) -> SailvlError | None:
    """The SailvlError behind a failed shard call (Ray wraps it as the `cause` of a task error), or None.

    A SailvlError is a mistake in the job's config or inputs (a missing model dir, a score without a prompt):
    every shard would fail alike, so every executor stops the run on the first one and raises it as it is,
    the one-line message the CLI prints. Any other exception fails only its own shard."""
    for err in (getattr(exc, "cause", None), exc):  # the cause first: Ray's wrapper also subclasses it
        if isinstance(err, SailvlError):
            return err
    return None


def failed_shards_error(errors: list[tuple[tuple[Any, ...], BaseException]], n_calls: int) -> SailvlError:
    """The one error an executor raises after every call finished and some failed."""
    call, exc = errors[0]
    return SailvlError(
        f"{len(errors)} of {n_calls} shards failed (first: {call[-1].name}: {type(exc).__name__}: {exc}); "
        "rerun the same command to resume"
    )


def write_manifest(cfg: PipelineConfig, shards: list[Shard]) -> dict[str, Any]:
    """Summarise the finished job: kept shards, counts, per-step stats (summed over shards)."""
    run_dir = cfg.run_dir
    totals: dict[str, Counter[str]] = {}
    outputs, kept, rejected = [], 0, 0
    for shard in shards:
        marker = json.loads(done_marker(run_dir, shard).read_text())
        kept += marker["kept"]
        rejected += marker["rejected"]
        outputs.append(
            {"path": f"kept/{shard.name}" + FORMAT_EXT[cfg.output.format], "records": marker["kept"]}
        )
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
