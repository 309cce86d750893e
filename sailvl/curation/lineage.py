"""Lineage of a finished run: where every input id ended (kept: output shard + offset; rejected: step +
reason), and a check that each id ends in exactly one place."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sailvl.data.sample import Sample


def iter_lineage(run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Every lineage row of the run, in shard order."""
    for path in sorted((Path(run_dir) / "lineage").glob("shard-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


@dataclass
class LineageReport:
    """Counts over the lineage of a run; `ok` when no id appears twice (and, if given, none is missing)."""

    kept: int = 0
    rejected: int = 0
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    repeated_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    unexpected_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.repeated_ids or self.missing_ids or self.unexpected_ids)


def check_lineage(run_dir: str | Path, input_ids: list[str] | None = None) -> LineageReport:
    """Verify that each id ends in exactly one place; with `input_ids`, also that the sets match."""
    report = LineageReport()
    seen: Counter[str] = Counter()
    for row in iter_lineage(run_dir):
        seen[row["id"]] += 1
        if row["status"] == "kept":
            report.kept += 1
        else:
            report.rejected += 1
            report.by_reason[(row["step"], row["reason"])] += 1
    report.repeated_ids = sorted(i for i, c in seen.items() if c > 1)
    if input_ids is not None:
        expected = set(input_ids)
        report.missing_ids = sorted(expected - set(seen))
        report.unexpected_ids = sorted(set(seen) - expected)
    return report


def fate_of(run_dir: str | Path, sample_id: str) -> dict[str, Any] | None:
    """The lineage row of one id (None when the run never saw it)."""
    return next((row for row in iter_lineage(run_dir) if row["id"] == sample_id), None)


def read_kept(run_dir: str | Path) -> Iterator[Any]:
    """Kept records of a JSONL run, in shard then offset order."""
    for path in sorted((Path(run_dir) / "kept").glob("shard-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield Sample.from_json(line)
