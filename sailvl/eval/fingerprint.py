"""Fingerprints of what shapes a cached eval result (model files, settings, benchmark and data files): an output
directory pins the fingerprint each of its caches (a benchmark's predictions, a quick-eval trial) was made with in
one `fingerprints.json`, and a run with another one is refused naming what changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sailvl.errors import SailvlError

FINGERPRINT_FILE = "fingerprints.json"
FORMAT_VERSION = 1
# Model-directory files that shape answers: config, tokenizer, processor, chat template, weights, remote code.
MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja", ".tiktoken", ".py")
# The run clock of a trained export (tokens seen...) is bookkeeping: it does not change an answer.
MODEL_IGNORED = ("trainer_state.json",)
_CHUNK = 8 << 20


class Digests:
    """sha256 of files, computed once per content: a file whose size and modification time match an entry
    learned from an earlier run's fingerprint is not read again. Comparing content hashes (not mtimes) means
    a copied model or benchmark still matches, and a retrained one with the same sizes does not."""

    def __init__(self) -> None:
        self.table: dict[str, dict[str, Any]] = {}

    def learn(self, table: dict[str, dict[str, Any]] | None) -> None:
        """Add the entries (path -> size, mtime_ns, sha256) of a stored fingerprint."""
        self.table.update(table or {})

    def file(self, path: str | Path) -> str:
        """`sha256:<hex>` of the file's content."""
        key = str(Path(path).resolve())
        stat = os.stat(key)
        known = self.table.get(key)
        if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
            return known["sha256"]
        digest = hashlib.sha256()
        with open(key, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        value = "sha256:" + digest.hexdigest()
        self.table[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
        return value

    def model(self, model_dir: str | Path) -> dict[str, str]:
        """file name -> content digest for the top-level files of a model directory that shape answers."""
        files = sorted(p for p in Path(model_dir).iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES)
        return {p.name: self.file(p) for p in files if p.name not in MODEL_IGNORED}


def canonical(fingerprint: dict) -> dict:
    """The fingerprint as JSON gives it back (paths as strings, tuples as lists), so stored and fresh compare."""
    return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


def read_pins(out_dir: Path) -> dict:
    """{"fingerprints": {cache name: fingerprint}, "digests": {...}} pinned in `out_dir` (empty when none)."""
    path = out_dir / FINGERPRINT_FILE
    if not path.is_file():
        return {"fingerprints": {}, "digests": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def write_pins(out_dir: Path, fingerprints: dict[str, dict], digests: Digests) -> None:
    """Pin `fingerprints` (cache name -> fingerprint) in `out_dir`, next to those of other caches there
    (temp file + rename: a reader never sees half of it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pins = read_pins(out_dir)
    pins["fingerprints"].update({name: canonical(fp) for name, fp in fingerprints.items()})
    pins.update(version=FORMAT_VERSION, digests={**pins.get("digests", {}), **digests.table})
    tmp = out_dir / f".{FINGERPRINT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / FINGERPRINT_FILE)


def _show(key: str, value: Any, other: Any) -> str:
    # Dicts (model files, data sources) are shown by the entries that differ, so the line stays short.
    if isinstance(value, dict) and isinstance(other, dict):
        names = sorted(k for k in set(value) | set(other) if value.get(k) != other.get(k))
        return f"{key} " + ", ".join(f"{n}={_brief(value.get(n, 'absent'))}" for n in names)
    return f"{key}={_brief(value)}"


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("sha256:", "sha256 ")
    return text[:19] if text.startswith("sha256 ") else text[:120]


def describe_change(old: dict, new: dict) -> tuple[str, str] | None:
    """("key=old, ...", "key=new, ...") over the keys whose values differ, or None when they agree."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return None
    before = ", ".join(_show(k, old.get(k, "absent"), new.get(k)) for k in keys)
    after = ", ".join(_show(k, new.get(k, "absent"), old.get(k)) for k in keys)
    return before, after


def check_fingerprint(
    directory: Path, stored: dict | None, fingerprint: dict, what: str, has_cache: bool, hint: str
) -> None:
    """Raise SailvlError unless the cache in `directory` may be reused under `fingerprint`.

    `stored` is the fingerprint pinned for it (None: none); `what` names the cached thing ("predictions");
    `has_cache` says whether anything is cached there. Nothing cached: nothing to mix, any fingerprint goes.
    A cache without a fingerprint predates them, so its settings are unknown: refused."""
    if not has_cache:
        return
    if stored is None:
        raise SailvlError(
            f"{what} in {directory} carry no fingerprint (made before sailvl recorded the settings "
            f"behind them), so they may come from other settings: {hint}"
        )
    change = describe_change(stored, canonical(fingerprint))
    if change is not None:
        raise SailvlError(
            f"{what} in {directory} were made with {change[0]}; this run has {change[1]}: {hint}"
        )
