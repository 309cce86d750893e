"""Step, Filter and BatchStep base classes, the per-step counters every step keeps, and `register_step`.

A leaf module: step plug-ins import it; the registry (`base.py`) imports the plug-ins and this module, so
nothing here imports a step back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

from pydantic import Field

from sailvl.config import SailConfig

# Signature of the callback an executor installs to receive rejected records: (record, step name, reason).
RejectSink = Callable[[Any, str, str], None]


class StepParams(SailConfig):
    """Parameters shared by every step; a step class extends this with its own fields."""

    name: str | None = Field(None, description="Name in the funnel and lineage; defaults to the step type.")


class Step:
    """One stage of a curation job: `run(records, rank, world_size)` yields the records it keeps.

    Records the step drops are handed to `self.reject(record, reason)`, which forwards them to the
    executor's sink (lineage + rejected shard). Heavy state (models) is created in `setup()`, which
    executors call once per worker, so a step object stays small and picklable until then.
    """

    type_name: ClassVar[str] = ""
    Params: ClassVar[type[StepParams]] = StepParams
    # True for steps that run a model: the Ray executor then gives each worker actor a GPU.
    uses_model: ClassVar[bool] = False
    # True for steps that need every record of the job before deciding (dedup): see job.py.
    is_global: ClassVar[bool] = False

    def __init__(self, params: StepParams | None = None, **kwargs: Any):
        self.params = params if params is not None else self.Params(**kwargs)
        self.name = self.params.name or self.type_name
        self.stats: Counter[str] = Counter()
        self._sink: RejectSink | None = None
        self._ready = False
        # Job-level facts an executor hands to the step before shipping it (e.g. `state_dir`).
        self.context: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load heavy state (models, indexes). Called once per worker before the first `run`."""

    def ensure_setup(self) -> None:
        """Call `setup()` once."""
        if not self._ready:
            self.setup()
            self._ready = True

    def __getstate__(self) -> dict[str, Any]:
        # Ship only the config to workers: loaded models and sinks are rebuilt there.
        return {"params": self.params, "context": self.context}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["params"])
        self.context = dict(state.get("context", {}))

    # -- records ---------------------------------------------------------------------------------
    def set_sink(self, sink: RejectSink | None) -> None:
        """Install the executor's callback that receives rejected records."""
        self._sink = sink

    def reject(self, record: Any, reason: str) -> None:
        """Drop `record` with a short machine-readable `reason` (counted and sent to the sink)."""
        self.stats[f"rejected:{reason}"] += 1
        if self._sink is not None:
            self._sink(record, self.name, reason)

    def run(self, records: Iterable[Any], rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        """Yield the records this step keeps (possibly modified); subclasses override."""
        raise NotImplementedError


class Filter(Step):
    """A step that only decides: `keep(record)` returns a bool or `(bool, reason)`.

    Filters that repair records (mode conversion) mutate the record they are given and keep it.
    """

    default_reason: ClassVar[str] = "filtered"

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        """Decide whether `record` survives; return `(False, reason)` to name why not."""
        raise NotImplementedError

    def run(self, records: Iterable[Any], rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        self.ensure_setup()
        for record in records:
            self.stats["in"] += 1
            verdict = self.keep(record)
            ok, reason = verdict if isinstance(verdict, tuple) else (verdict, self.default_reason)
            if ok:
                self.stats["out"] += 1
                yield record
            else:
                self.reject(record, reason)


class BatchParams(StepParams):
    batch_size: int = Field(8, ge=1, description="Records per `process_batch` call (prompts per generate).")


class BatchStep(Step):
    """A step that works on batches (model inference): implement `process_batch`.

    `process_batch(records)` returns one entry per record: the (possibly new) record to keep, or a
    string reason to reject it.
    """

    Params = BatchParams

    def batch_size(self) -> int:
        """Records per `process_batch` call."""
        return int(self.params.batch_size)  # type: ignore[attr-defined]

    def process_batch(self, records: list[Any]) -> list[Any]:
        raise NotImplementedError

    def run(self, records: Iterable[Any], rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        self.ensure_setup()
        batch: list[Any] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.batch_size():
                yield from self._flush(batch)
                batch = []
        if batch:
            yield from self._flush(batch)

    def _flush(self, batch: list[Any]) -> Iterator[Any]:
        self.stats["in"] += len(batch)
        results = self.process_batch(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"step {self.name} returned {len(results)} results for {len(batch)} records")
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, str):
                self.reject(record, result)
            else:
                self.stats["out"] += 1
                yield result


# -- registration (lookup lives in base.py, which imports every built-in step) ----------------------------
STEPS: dict[str, type[Step]] = {}


def register_step(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step buildable from a pipeline YAML as `type: name`."""

    def wrap(cls: type[Step]) -> type[Step]:
        cls.type_name = name
        STEPS[name] = cls
        return cls

    return wrap
