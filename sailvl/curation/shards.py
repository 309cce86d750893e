"""Work units of a curation job: input shards (a file or a record range of one), their readers, and
the per-shard output (kept records, rejected records, lineage) committed atomically with a done marker."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sailvl.curation.config import InputConfig
from sailvl.data import writers
from sailvl.data.readers import UnreadableRecord, decode_raw, iter_raw
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError

READ_STEP = "read"
_EXT_FORMAT = {".jsonl": "jsonl", ".json": "jsonl", ".tar": "webdataset", ".parquet": "parquet"}
FORMAT_EXT = {"jsonl": ".jsonl", "webdataset": ".tar", "parquet": ".parquet"}


@dataclass(frozen=True)
class Shard:
    """Records `[start, stop)` of one input file (`stop=None`: to the end); `index` orders the job's
    `total` shards (steps see them as rank and world size)."""

    index: int
    path: str
    format: str
    start: int = 0
    stop: int | None = None
    total: int = 1

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


def _file_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    for ext, fmt in _EXT_FORMAT.items():
        if path.endswith(ext):
            return fmt
    raise SailvlError(
        f"cannot tell the format of input {path}; set input.format to jsonl, webdataset or parquet"
    )


def _count_records(path: str, fmt: str) -> int:
    return sum(1 for _ in iter_raw(fmt, path))


def plan_shards(cfg: InputConfig) -> list[Shard]:
    """Expand the input globs (sorted) into shards; the same config always gives the same shards."""
    files: list[str] = []
    for pattern in cfg.paths:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        for path in matches:
            if not os.path.isfile(path):
                raise SailvlError(f"input file {path} does not exist")
            files.append(path)
    if not files:
        raise SailvlError(f"input paths {cfg.paths} match no files")
    shards: list[Shard] = []
    for path in files:
        fmt = _file_format(path, cfg.format)
        if cfg.records_per_shard is None:
            shards.append(Shard(len(shards), path, fmt, 0, cfg.limit))
            continue
        total = _count_records(path, fmt)
        if cfg.limit is not None:
            total = min(total, cfg.limit)
        for start in range(0, max(total, 1), cfg.records_per_shard):
            shards.append(Shard(len(shards), path, fmt, start, min(start + cfg.records_per_shard, total)))
    return [dataclasses.replace(s, total=len(shards)) for s in shards]


def iter_shard(shard: Shard, image_root: str | None) -> Iterator[tuple[int, Sample | tuple[str, str]]]:
    """`(offset in shard, record)` pairs; a record that cannot be parsed comes as `(fallback id, reason)`."""
    source = Path(shard.path).stem
    if image_root is None and shard.format == "jsonl":
        image_root = str(Path(shard.path).parent)
    for i, raw in enumerate(iter_raw(shard.format, shard.path)):
        if i < shard.start:
            continue  # raw records are cheap to skip: nothing is parsed or decoded
        if shard.stop is not None and i >= shard.stop:
            break
        try:
            yield i - shard.start, decode_raw(shard.format, raw, source, image_root)
        except UnreadableRecord as exc:
            yield i - shard.start, (exc.record_id, exc.reason)


class ShardOutput:
    """Writes one shard's kept records, rejected records and lineage to a temp dir; `commit` publishes them.

    The done marker is written last, so a killed run leaves either a complete shard or one that a rerun
    redoes from scratch (its temp dir is discarded): no duplicates and no losses.
    """

    def __init__(self, run_dir: Path, shard: Shard, out_format: str, write_rejected: bool):
        self.run_dir, self.shard, self.format = Path(run_dir), shard, out_format
        self.tmp = self.run_dir / "tmp" / shard.name
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.kept_rel = f"kept/{shard.name}{FORMAT_EXT[out_format]}"
        # Kept records of one shard are held until commit and written by the data pipeline's writers;
        # size shards (input.records_per_shard) so that one fits in a worker's memory.
        self._kept: list[Sample] = []
        self._lineage = open(self.tmp / "lineage.jsonl", "w", encoding="utf-8")
        self._rejected = open(self.tmp / "rejected.jsonl", "w", encoding="utf-8") if write_rejected else None
        self.n_kept = 0
        self.n_rejected = 0

    def keep(self, sample: Sample) -> None:
        """Append a kept record at the next offset of this shard's output."""
        self._kept.append(sample)
        self._lineage.write(
            json.dumps({"id": sample.id, "status": "kept", "output": self.kept_rel, "offset": self.n_kept})
            + "\n"
        )
        self.n_kept += 1

    def reject(self, sample: Sample | None, step: str, reason: str, sample_id: str | None = None) -> None:
        """Record that `step` dropped this record for `reason`."""
        rid = sample.id if sample is not None else sample_id
        self._lineage.write(
            json.dumps({"id": rid, "status": "rejected", "step": step, "reason": reason}) + "\n"
        )
        if self._rejected is not None:
            row: dict[str, Any] = {"id": rid, "step": step, "reason": reason}
            if sample is not None:
                row["sample"] = sample.to_dict()
            self._rejected.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.n_rejected += 1

    def commit(self, stats: dict[str, Any]) -> None:
        """Close, move the files into place, then write the done marker (the commit point)."""
        kept_tmp = self.tmp / f"kept{FORMAT_EXT[self.format]}"
        if self.format == "jsonl":
            writers.write_jsonl(self._kept, kept_tmp)
        elif self.format == "parquet":
            writers.write_parquet(self._kept, kept_tmp)
        else:
            tars = writers.write_webdataset(
                self._kept, self.tmp, shard_size=max(len(self._kept), 1), prefix="w"
            )
            if tars:
                os.replace(tars[0], kept_tmp)
            else:
                tarfile.open(kept_tmp, "w").close()
        self._lineage.close()
        if self._rejected is not None:
            self._rejected.close()
        moves = [(kept_tmp.name, self.kept_rel)]
        moves.append(("lineage.jsonl", f"lineage/{self.shard.name}.jsonl"))
        if self._rejected is not None:
            moves.append(("rejected.jsonl", f"rejected/{self.shard.name}.jsonl"))
        for src, dst in moves:
            target = self.run_dir / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp / src, target)
        marker = {
            "shard": self.shard.name,
            "path": self.shard.path,
            "kept": self.n_kept,
            "rejected": self.n_rejected,
        }
        write_json_atomic(done_marker(self.run_dir, self.shard), {**marker, "stats": stats})
        shutil.rmtree(self.tmp, ignore_errors=True)


def done_marker(run_dir: Path, shard: Shard) -> Path:
    """Path of a shard's completion marker."""
    return Path(run_dir) / "done" / f"{shard.name}.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)
