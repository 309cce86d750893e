"""Writers for the reader formats: JSONL (native Sample schema), webdataset tar shards, parquet, HF datasets on disk."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sailvl.data.sample import Sample
from sailvl.errors import SailvlError

PARQUET_COLUMNS = ("id", "source", "images", "conversation", "metadata")


def image_bytes(ref: str | bytes) -> bytes:
    """Encoded bytes of an image reference (reads the file for a path)."""
    if isinstance(ref, bytes):
        return ref
    try:
        return Path(ref).read_bytes()
    except OSError as exc:
        raise SailvlError(f"cannot read image {ref}: {exc.strerror}") from None


def image_extension(data: bytes) -> str:
    """File extension for encoded image bytes, from their magic number ('img' when unknown)."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:3] == b"GIF":
        return "gif"
    return "img"


def write_jsonl(samples: Iterable[Sample], path: str | Path, image_dir: str | Path | None = None) -> int:
    """Write one `Sample.to_json()` line per sample; returns the number written.

    Byte images are saved as files under `image_dir` (paths stored absolute) when given, else embedded base64.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image_dir is not None:
        Path(image_dir).mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for sample in samples:
            if image_dir is not None and any(isinstance(im, bytes) for im in sample.images):
                refs = []
                for k, im in enumerate(sample.images):
                    if isinstance(im, bytes):
                        safe_id = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in sample.id)
                        target = Path(image_dir) / f"{safe_id}_{count}_{k}.{image_extension(im)}"
                        target.write_bytes(im)
                        im = str(target.resolve())
                    refs.append(im)
                sample = Sample(sample.id, sample.source, refs, sample.conversation, sample.metadata)
            fh.write(sample.to_json() + "\n")
            count += 1
    return count


def write_webdataset(
    samples: Iterable[Sample], out_dir: str | Path, shard_size: int = 1000, prefix: str = "shard"
) -> list[str]:
    """Write tar shards of `shard_size` samples (`<key>.json` + `<key>.<k>.<ext>` per image); returns shard paths."""
    import webdataset as wds

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    writer = None
    for index, sample in enumerate(samples):
        if index % shard_size == 0:
            if writer is not None:
                writer.close()
            paths.append(str(out_dir / f"{prefix}-{len(paths):06d}.tar"))
            writer = wds.TarWriter(paths[-1])
        # Keys are positional: sample ids may hold dots or slashes, which webdataset treats as separators.
        entry: dict[str, object] = {"__key__": f"{index:010d}"}
        record = sample.to_dict()
        record["images"] = []
        entry["json"] = json.dumps(record, ensure_ascii=False).encode("utf-8")
        for k, ref in enumerate(sample.images):
            data = image_bytes(ref)
            entry[f"{k}.{image_extension(data)}"] = data
        writer.write(entry)
    if writer is not None:
        writer.close()
    return paths


def _rows(samples: Iterable[Sample]):
    for sample in samples:
        yield {
            "id": sample.id,
            "source": sample.source,
            "images": [image_bytes(ref) for ref in sample.images],
            "conversation": json.dumps(sample.conversation, ensure_ascii=False),
            "metadata": json.dumps(sample.metadata, ensure_ascii=False),
        }


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("images", pa.list_(pa.binary())),
            ("conversation", pa.string()),
            ("metadata", pa.string()),
        ]
    )


def write_parquet(samples: Iterable[Sample], path: str | Path, rows_per_group: int = 512) -> int:
    """Stream samples into one parquet file (images as bytes), `rows_per_group` rows per row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema, count, rows = _schema(), 0, []
    with pq.ParquetWriter(str(path), schema) as writer:
        for row in _rows(samples):
            rows.append(row)
            if len(rows) == rows_per_group:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count, rows = count + len(rows), []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    return count


def write_hf_disk(samples: Iterable[Sample], path: str | Path) -> int:
    """Save samples as a `datasets.Dataset` directory (same columns as parquet); builds the table in memory."""
    import datasets
    import pyarrow as pa

    table = pa.Table.from_pylist(list(_rows(samples)), schema=_schema())
    datasets.Dataset(table).save_to_disk(str(path))
    return table.num_rows
