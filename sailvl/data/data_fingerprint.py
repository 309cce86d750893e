"""The data fingerprint a loader state carries (sources, mixture, packing, tokenizer) and what changed since one
was saved: saved positions index records of particular files, so they only mean something for the same data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sailvl.data.config import DataConfig, SourceConfig
from sailvl.data.mixture import count_records
from sailvl.data.readers import list_files

# DataConfig fields that decide which records a saved position or buffered sample stands for, and how samples
# are grouped (a restored pack must still fit). Loader plumbing (workers, pinning, mask format) is not here.
LAYOUT_KEYS = ("max_tokens", "packing", "packs_per_batch", "batch_size", "pack_buffer", "max_tiles_per_pack",
               "shuffle_block", "long_samples")  # fmt: skip
_LABELS = {"max_tokens": "pack length (max_tokens)"}


def _size(path: str) -> int:
    # An hf_disk source is a directory of arrow files.
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def source_fingerprint(source: SourceConfig) -> dict:
    """Path, files with their sizes in bytes, and the record count (None for webdataset: counting would read
    every tar in full, and a tar with other samples has another size)."""
    files = list_files(source.format, source.path)
    records = None if source.format == "webdataset" else count_records(source)
    return {
        "name": source.display_name,
        "path": source.path,
        "format": source.format,
        "max_tiles": source.max_tiles,
        "files": {f: _size(f) for f in files},
        "records": records,
    }


def tokenizer_fingerprint(tokenizer) -> dict:
    """Vocabulary size and a hash of the vocabulary with the special tokens."""
    vocab = sorted(tokenizer.get_vocab().items())
    text = json.dumps([vocab, list(tokenizer.all_special_tokens)], ensure_ascii=False)
    return {"size": len(tokenizer), "hash": hashlib.sha256(text.encode()).hexdigest()[:16]}


def data_fingerprint(config: DataConfig, tokenizer, weights: list[float]) -> dict:
    """Everything a saved loader position depends on besides seed, ranks and workers (checked on their own)."""
    return {
        "sources": [source_fingerprint(s) for s in config.sources],
        "weights": list(weights),
        "layout": {key: getattr(config, key) for key in LAYOUT_KEYS},
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }


def _source_changes(old: dict, new: dict) -> list[str]:
    where = f"for source {old['path']}"
    if (old["path"], old["format"]) != (new["path"], new["format"]):
        return [f"{where} ({old['format']}) is now {new['path']} ({new['format']})"]
    changes = []
    if old["records"] != new["records"]:
        changes.append(f"{where} with {old['records']} records; it now has {new['records']}")
    for file in sorted(set(old["files"]) | set(new["files"])):
        before, after = old["files"].get(file), new["files"].get(file)
        if before != after:
            was = "absent" if before is None else f"{before} bytes"
            now = "is gone" if after is None else f"has {after} bytes"
            changes.append(f"{where} with file {file} {was}; it now {now}")
    if old["max_tiles"] != new["max_tiles"]:
        changes.append(f"{where} with max_tiles={old['max_tiles']}; it now has {new['max_tiles']}")
    return changes


def data_changes(old: dict, new: dict) -> list[str]:
    """What differs between a saved data fingerprint and this loader's, one phrase each to follow "loader state
    was saved" (empty: nothing)."""
    old_names = [s["name"] for s in old["sources"]]
    new_names = [s["name"] for s in new["sources"]]
    if len(old_names) != len(new_names):
        return [f"for {len(old_names)} sources ({', '.join(old_names)}); the data now has {len(new_names)} "
                f"({', '.join(new_names)})"]  # fmt: skip
    changes = [c for a, b in zip(old["sources"], new["sources"], strict=True) for c in _source_changes(a, b)]
    if old["weights"] != new["weights"]:
        shown = [", ".join(f"{n} {w:.4g}" for n, w in zip(new_names, ws, strict=True)) for ws in
                 (old["weights"], new["weights"])]  # fmt: skip
        changes.append(f"with mixture weights {shown[0]}; they are now {shown[1]}")
    for key in LAYOUT_KEYS:
        before, after = old["layout"].get(key), new["layout"].get(key)
        if before != after:
            changes.append(f"with {_LABELS.get(key, key)} {before}; it is now {after}")
    tok_old, tok_new = old["tokenizer"], new["tokenizer"]
    if tok_old != tok_new:
        changes.append(
            f"with a tokenizer of {tok_old['size']} tokens (hash {tok_old['hash']}); this one has "
            f"{tok_new['size']} tokens (hash {tok_new['hash']})"
        )
    return changes
