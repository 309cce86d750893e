"""Streaming reader for VLMEvalKit benchmark TSVs: base64 images, image references, multi-image rows."""

from __future__ import annotations

import ast
import base64
import csv
import math
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sailvl.errors import SailvlError

OPTION_LETTERS = string.ascii_uppercase
# Indices at or above this mark circular copies in VLMEvalKit's MMBench files (index % 1e6 = question).
CIRCULAR_OFFSET = 1_000_000
# An `image` cell shorter than this is a reference to another row's image, as VLMEvalKit writes them.
_REFERENCE_MAX_LEN = 64


@dataclass
class BenchItem:
    """One benchmark question. `images` hold encoded image bytes (PNG/JPEG) in prompt order."""

    index: int | str
    question: str
    answer: str
    options: dict[str, str] = field(default_factory=dict)
    category: str = ""
    hint: str = ""
    images: list[bytes] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    image_key: str = ""  # rows showing the same image share this (MME pairs two questions per image)

    @property
    def group(self) -> int | str:
        """The question a circular copy belongs to (its index modulo 1e6)."""
        return self.index % CIRCULAR_OFFSET if isinstance(self.index, int) else self.index


def _is_missing(value: str | None) -> bool:
    if value is None:
        return True
    text = value.strip()
    return text == "" or text.lower() == "nan" or text.lower() == "none"


def _parse_index(value: str) -> int | str:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if math.isfinite(number) and number == int(number) else value


def _split_image_cell(cell: str) -> list[str]:
    """An image cell is one base64 string or a Python/JSON list of them (multi-image benchmarks)."""
    cell = cell.strip()
    if cell.startswith("["):
        try:
            parsed = ast.literal_eval(cell)
        except (ValueError, SyntaxError) as exc:
            raise SailvlError(f"image cell starting {cell[:30]!r} is neither base64 nor a list") from exc
        return [str(x) for x in parsed]
    return [cell]


def _image_columns(header: list[str]) -> list[str]:
    numbered = sorted(
        (c for c in header if c.startswith("image_") and c[6:].isdigit()), key=lambda c: int(c[6:])
    )
    return (["image"] if "image" in header else []) + numbered


def _open_reader(path: Path):
    # Base64 images exceed csv's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    handle = open(path, newline="", encoding="utf-8")
    # pandas (which writes VLMEvalKit TSVs) quotes cells holding tabs, newlines or quotes.
    reader = csv.DictReader(handle, delimiter="\t")
    if reader.fieldnames is None:
        handle.close()
        raise SailvlError(f"benchmark file {path} is empty; expected a header with index, question, answer")
    return handle, reader


def _referenced_indices(path: Path, image_cols: list[str]) -> set[str]:
    """First pass: which rows other rows point at, so only those images are kept in memory."""
    refs: set[str] = set()
    handle, reader = _open_reader(path)
    with handle:
        for row in reader:
            for col in image_cols:
                cell = row.get(col)
                if not _is_missing(cell) and len(cell.strip()) < _REFERENCE_MAX_LEN:
                    refs.add(str(_parse_index(cell.strip())))
    return refs


def read_benchmark(path: str | Path, decode_images: bool = True) -> Iterator[BenchItem]:
    """Stream the rows of a VLMEvalKit TSV as BenchItems.

    Options are the non-empty single-letter columns (A, B, ...). An image cell that is a short
    number refers to the image of the row with that index. With `decode_images=False` the images
    are left empty (for scoring, which needs only answers and metadata)."""
    path = Path(path)
    handle, reader = _open_reader(path)
    header = list(reader.fieldnames)
    handle.close()
    for required in ("index", "question", "answer"):
        if required not in header:
            raise SailvlError(
                f"benchmark file {path} has no {required!r} column (columns: {', '.join(header)})"
            )
    option_cols = [c for c in header if len(c) == 1 and c in OPTION_LETTERS]
    image_cols = _image_columns(header)
    refs = _referenced_indices(path, image_cols) if image_cols and decode_images else set()
    kept: dict[str, list[str]] = {}
    known_cols = {"index", "question", "answer", "category", "hint", *option_cols, *_image_columns(header)}
    handle, reader = _open_reader(path)
    with handle:
        for line_no, row in enumerate(reader, start=2):
            index = _parse_index(row["index"].strip())
            encoded: list[str] = []
            image_key = str(index)
            for col in image_cols:
                cell = row.get(col)
                if _is_missing(cell):
                    continue
                cell = cell.strip()
                if len(cell) < _REFERENCE_MAX_LEN:
                    key = str(_parse_index(cell))
                    image_key = key if col == image_cols[0] else image_key
                    if not decode_images:
                        continue
                    if key not in kept:
                        raise SailvlError(
                            f"{path}:{line_no}: image refers to row {key}, which has no image before it"
                        )
                    encoded.extend(kept[key])
                elif decode_images:
                    encoded.extend(_split_image_cell(cell))
            if str(index) in refs and encoded:
                kept[str(index)] = encoded
            options = {c: row[c].strip() for c in option_cols if not _is_missing(row.get(c))}
            yield BenchItem(
                index=index,
                question=(row.get("question") or "").strip(),
                answer=(row.get("answer") or "").strip(),
                options=options,
                category="" if _is_missing(row.get("category")) else row["category"].strip(),
                hint="" if _is_missing(row.get("hint")) else row["hint"].strip(),
                images=[base64.b64decode(b) for b in encoded],
                extra={
                    k: v for k, v in row.items() if k not in known_cols and k is not None and v is not None
                },
                image_key=row.get("image_path") or image_key,
            )


def rotate_options(item: BenchItem, shift: int) -> BenchItem:
    """A circular copy of an MCQ item: option texts shifted by `shift`, answer letter remapped,
    index = original + shift * 1e6 (VLMEvalKit's convention)."""
    letters = list(item.options)
    texts = [item.options[k] for k in letters]
    n = len(letters)
    rotated = {letters[i]: texts[(i + shift) % n] for i in range(n)}
    answer = item.answer
    if answer in item.options:
        answer = letters[(letters.index(answer) - shift) % n]
    index = item.index + shift * CIRCULAR_OFFSET if isinstance(item.index, int) else f"{item.index}#{shift}"
    return BenchItem(
        index,
        item.question,
        answer,
        rotated,
        item.category,
        item.hint,
        item.images,
        dict(item.extra),
        item.image_key,
    )


def circular_items(items: Iterator[BenchItem] | list[BenchItem]) -> Iterator[BenchItem]:
    """Every MCQ item once per rotation of its options. Files that already hold circular copies
    (an index >= 1e6, as VLMEvalKit's MMBench TSVs do) are passed through unchanged."""
    items = list(items)
    if any(isinstance(it.index, int) and it.index >= CIRCULAR_OFFSET for it in items):
        yield from items
        return
    for item in items:
        yield item
        for shift in range(1, len(item.options)):
            yield rotate_options(item, shift)


def write_benchmark(path: str | Path, rows: list[dict]) -> None:
    """Write rows (dicts; `image` as raw bytes or a list of bytes) as a VLMEvalKit TSV, for tests and tools."""
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            cells = []
            for key in header:
                value = row.get(key, "")
                if isinstance(value, bytes):
                    value = base64.b64encode(value).decode()
                elif isinstance(value, list):
                    value = repr([base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in value])
                cells.append(str(value))
            writer.writerow(cells)
