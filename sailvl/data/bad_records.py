"""Counting skipped records by reason, logging each reason once, and aborting past a bad-fraction threshold."""

from __future__ import annotations

import logging
from collections import Counter

from sailvl.errors import SailvlError

logger = logging.getLogger(__name__)

# Reasons the data pipeline itself assigns; image loading adds its own (missing / corrupt / empty image).
BAD_JSON = "bad_json"
BAD_SCHEMA = "bad_schema"
IMAGE_COUNT_MISMATCH = "image_count_mismatch"
EMPTY_ANSWER = "empty_answer"
TOO_LONG = "too_long"
TOO_MANY_TILES = "too_many_tiles"
# Preference records (objective: dpo): no rejected answer, or one equal to the chosen answer.
NO_REJECTED = "no_rejected"
REJECTED_IS_CHOSEN = "rejected_is_chosen"


class BadRecordCounter:
    """Counts records seen and records skipped per reason; logs the first example id of each reason.

    `max_bad_fraction` (0..1) is checked by `check()` once at least `min_records` records were seen, so a
    few bad records at the start of a run do not abort it.
    """

    def __init__(self, max_bad_fraction: float = 0.1, min_records: int = 100, log: bool = True):
        self.max_bad_fraction = max_bad_fraction
        self.min_records = min_records
        self.log = log
        self.seen = 0
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    @property
    def num_bad(self) -> int:
        """Total skipped records over all reasons."""
        return sum(self.counts.values())

    def ok(self) -> None:
        """Record one good record."""
        self.seen += 1

    def skip(self, reason: str, example_id: str, detail: str = "") -> None:
        """Record one skipped record; the first one of each reason is logged with its id."""
        self.seen += 1
        self.counts[reason] += 1
        if reason not in self.examples:
            self.examples[reason] = example_id
            if self.log:
                logger.warning(
                    "skipping bad record %s (%s)%s", example_id, reason, f": {detail}" if detail else ""
                )

    def merge(self, other: BadRecordCounter | dict) -> None:
        """Add another counter (or its `state_dict()`) into this one."""
        state = other.state_dict() if isinstance(other, BadRecordCounter) else other
        self.seen += state["seen"]
        self.counts.update(state["counts"])
        for reason, example in state["examples"].items():
            self.examples.setdefault(reason, example)

    def check(self) -> None:
        """Raise SailvlError when the skipped fraction exceeds the threshold."""
        if self.seen >= self.min_records and self.num_bad > self.max_bad_fraction * self.seen:
            raise SailvlError(
                f"{self.num_bad} of {self.seen} records were bad ({self.summary()}), more than the allowed "
                f"fraction {self.max_bad_fraction}; fix the data or raise data.max_bad_fraction"
            )

    def summary(self) -> str:
        """One line: counts per reason with an example id each."""
        if not self.counts:
            return "no bad records"
        return ", ".join(f"{r}: {n} (e.g. {self.examples[r]})" for r, n in sorted(self.counts.items()))

    def state_dict(self) -> dict:
        """Plain-python state (picklable, JSON-safe)."""
        return {"seen": self.seen, "counts": dict(self.counts), "examples": dict(self.examples)}

    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict()`."""
        self.seen = state["seen"]
        self.counts = Counter(state["counts"])
        self.examples = dict(state["examples"])
