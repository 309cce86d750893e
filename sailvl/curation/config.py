"""Pipeline config: input shards, the ordered step list, output format, executor settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from sailvl.config import SailConfig, load_config
from sailvl.curation.base import build_step
from sailvl.errors import ConfigError


class InputConfig(SailConfig):
    """Where the records come from."""

    paths: list[str] = Field(description="Input files or glob patterns (JSONL, webdataset .tar, parquet).")
    format: Literal["auto", "jsonl", "webdataset", "parquet"] = Field(
        "auto", description="Reader to use; 'auto' picks by file extension."
    )
    image_root: str | None = Field(
        None, description="Directory relative image paths in JSONL resolve against."
    )
    records_per_shard: int | None = Field(
        None,
        ge=1,
        description="Cut each file into shards of this many records (work units); None: one per file.",
    )
    limit: int | None = Field(None, ge=1, description="Read at most this many records per file (smoke runs).")


class OutputConfig(SailConfig):
    """Where kept records go."""

    format: Literal["jsonl", "webdataset", "parquet"] = Field(
        "jsonl", description="Format of the kept shards."
    )
    write_rejected: bool = Field(True, description="Also write each rejected record (with step and reason).")


class ExecutorConfig(SailConfig):
    """How the job runs."""

    type: Literal["local", "ray"] = Field("local", description="'local' process pool or 'ray' (Ray actors).")
    workers: int = Field(1, ge=1, description="Local: worker processes (1 runs in this process).")
    ray_address: str | None = Field(
        None, description="Ray: cluster address ('auto' to join); None starts one."
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="Ray: CPUs for a locally started Ray.")
    model_replicas: int | None = Field(
        None,
        ge=1,
        description="Ray, pipelines with a model step: actors (model replicas); None: one per GPU, or one "
        "per CPU on a cluster without GPUs. Each actor holds one CPU (and one GPU when the cluster has GPUs).",
    )


class CurriculumConfig(SailConfig):
    """Split the kept SFT records into stages that rise on every scored dimension."""

    stages: int = Field(3, ge=2, description="Number of curriculum stages.")
    keys: list[str] = Field(
        default_factory=lambda: ["difficulty", "complexity", "relevance"],
        description="metadata fields (written by the sft_scoring step) every stage mean must rise on.",
    )
    stratify: str | None = Field(
        None,
        description="metadata field (e.g. task) to split within: every stage keeps each value's share of the data.",
    )


class PipelineConfig(SailConfig):
    """A curation job: read input shards, run the steps in order, write kept shards + lineage."""

    name: str = Field("curation", description="Job name (shown in reports).")
    input: InputConfig = Field(description="Input files and sharding.")
    output_dir: str = Field(description="Run directory: kept/, rejected/, lineage/, done/ markers, manifest.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Output format.")
    steps: list[dict[str, Any]] = Field(
        description="Ordered steps, each `{type: <registered name>, ...params}`."
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="Executor settings.")
    curriculum: CurriculumConfig | None = Field(None, description="Optional curriculum split after the run.")

    @field_validator("steps")
    @classmethod
    def _validate_steps(cls, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = []
        for i, spec in enumerate(steps):
            try:
                step = build_step(dict(spec))
            except ConfigError as exc:
                raise ValueError(f"steps.{i}: {exc}") from None
            names.append(step.name)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique (set `name:`), repeated: {', '.join(dupes)}")
        return steps

    def build_steps(self) -> list:
        """Fresh step objects for this pipeline (each worker builds or unpickles its own)."""
        return [build_step(dict(spec)) for spec in self.steps]

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a pipeline YAML with `key=value` overrides; relative paths stay relative to the cwd."""
    cfg = load_config(PipelineConfig, path, overrides)
    if not cfg.steps:
        raise ConfigError(f"pipeline {path} has no steps")
    return cfg
