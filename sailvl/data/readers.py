"""Streaming readers: JSONL (InternVL/LLaVA or OpenAI messages), webdataset tar shards, parquet, HF datasets on disk."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sailvl.data.bad_records import BAD_JSON, BAD_SCHEMA, BadRecordCounter
from sailvl.data.sample import Sample, sample_from_record
from sailvl.errors import SailvlError

FORMATS = ("jsonl", "webdataset", "parquet", "hf_disk")
_SUFFIX = {"jsonl": (".jsonl", ".json"), "webdataset": (".tar",), "parquet": (".parquet",)}


class UnreadableRecord(ValueError):
    """A record that cannot be turned into a Sample; `reason` is its bad-record reason."""

    def __init__(self, reason: str, record_id: str, detail: str = ""):
        super().__init__(f"{record_id}: {reason} {detail}".strip())
        self.reason = reason
        self.record_id = record_id
        self.detail = detail


def list_files(fmt: str, path: str | Path) -> list[str]:
    """Files of a source: a file, a directory (its files with the format's suffix, sorted) or a glob pattern."""
    if fmt not in FORMATS:
        raise SailvlError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
    path = str(path)
    if fmt == "hf_disk":
        if not Path(path).is_dir():
            raise SailvlError(f"HF dataset directory {path} does not exist")
        return [path]
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path))
    elif Path(path).is_dir():
        files = sorted(str(p) for p in Path(path).iterdir() if p.name.endswith(_SUFFIX[fmt]))
    elif Path(path).is_file():
        files = [path]
    else:
        raise SailvlError(f"data path {path} does not exist")
    if not files:
        raise SailvlError(f"no {fmt} files found at {path}")
    return files


def iter_raw(fmt: str, file: str) -> Iterator[Any]:
    """Undecoded records of one file, in order (cheap to skip: no JSON parsing, no image decoding)."""
    if fmt == "jsonl":
        with open(file, encoding="utf-8", errors="replace") as fh:
            for line_no, line in enumerate(fh):
                if line.strip():
                    yield (file, line_no, line)
    elif fmt == "webdataset":
        from webdataset.tariterators import tarfile_samples

        yield from tarfile_samples([{"url": file}])
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(file)
        for batch in reader.iter_batches(batch_size=256):
            yield from batch.to_pylist()
    else:
        import datasets

        dataset = datasets.load_from_disk(file)
        if isinstance(dataset, datasets.DatasetDict):
            raise SailvlError(f"{file} holds a DatasetDict; point the source at one split's directory")
        yield from dataset


def _image_keys(raw: dict[str, Any]) -> list[str]:
    keys = [k for k in raw if k.split(".")[0].isdigit() and "." in k]
    return sorted(keys, key=lambda k: int(k.split(".")[0]))


def decode_raw(fmt: str, raw: Any, source: str, image_root: str | None = None) -> Sample:
    """Turn one raw record into a Sample; raises UnreadableRecord(reason) when it cannot."""
    if fmt == "jsonl":
        file, line_no, line = raw
        default_id = f"{Path(file).stem}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnreadableRecord(BAD_JSON, default_id, str(exc)) from None
        try:
            return sample_from_record(record, source, default_id, image_root)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnreadableRecord(BAD_SCHEMA, default_id, str(exc)) from None
    if fmt == "webdataset":
        key = str(raw.get("__key__", "?"))
        try:
            record = json.loads(raw["json"])
            record.setdefault("id", key)
            sample = sample_from_record(record, source, key, image_root)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise UnreadableRecord(BAD_JSON, key, str(exc)) from None
        sample.images = [raw[k] for k in _image_keys(raw)]
        return sample
    row_id = str(raw.get("id", "?"))
    try:
        return Sample(
            id=row_id,
            source=str(raw.get("source") or source),
            images=[bytes(im) for im in raw.get("images") or []],
            conversation=json.loads(raw["conversation"]),
            metadata=json.loads(raw.get("metadata") or "{}"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise UnreadableRecord(BAD_JSON, row_id, str(exc)) from None


def read_source(
    fmt: str,
    path: str | Path,
    image_root: str | None = None,
    source: str | None = None,
    bad: BadRecordCounter | None = None,
) -> Iterator[Sample]:
    """Stream the Samples of a source in order; unreadable records are skipped and counted in `bad`.

    `source` names the samples; when None a record's own `source` field (else the path stem) is kept.
    """
    fallback = source if source is not None else Path(str(path)).stem
    for file in list_files(fmt, path):
        for raw in iter_raw(fmt, file):
            try:
                sample = decode_raw(fmt, raw, fallback, image_root)
                if source is not None:
                    sample.source = source
            except UnreadableRecord as exc:
                if bad is None:
                    raise SailvlError(f"unreadable record {exc.record_id} in {file}: {exc.reason}") from None
                bad.skip(exc.reason, exc.record_id, exc.detail)
                continue
            yield sample


def read_jsonl(path, image_root=None, source=None, bad=None) -> Iterator[Sample]:
    """Stream Samples from JSONL (InternVL/LLaVA `conversations` or OpenAI `messages`); images joined to image_root."""
    return read_source("jsonl", path, image_root, source, bad)


def read_webdataset(urls, source=None, bad=None) -> Iterator[Sample]:
    """Stream Samples from webdataset tar shards (a `.json` member plus `<k>.<ext>` image members per sample)."""
    return read_source("webdataset", urls, None, source, bad)


def read_parquet(path, source=None, bad=None) -> Iterator[Sample]:
    """Stream Samples from parquet files (columns id, source, images: list<binary>, conversation, metadata)."""
    return read_source("parquet", path, None, source, bad)


def read_hf_disk(path, source=None, bad=None) -> Iterator[Sample]:
    """Stream Samples from a `datasets.Dataset.save_to_disk` directory with the parquet columns."""
    return read_source("hf_disk", path, None, source, bad)
