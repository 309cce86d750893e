"""Metadata selection steps: keep records whose metadata field takes one of the given values (`select`), or a
subset of a given size balanced over a metadata field's values (`balanced_subset`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from sailvl.curation.base import Filter, StepParams, register_step
from sailvl.curation.dedup import DUPLICATES_FILE


class SelectParams(StepParams):
    field: str = Field(description="metadata key to look at, e.g. caption_type.")
    values: list[Any] = Field(description="Values that keep a record; anything else is rejected.")


@register_step("select")
class Select(Filter):
    """Keep records with `metadata[field] in values` (reason `not_selected:<field>` otherwise)."""

    Params = SelectParams

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        if record.metadata.get(self.params.field) in self.params.values:
            return True
        return False, f"not_selected:{self.params.field}"


class BalancedSubsetParams(StepParams):
    size: int = Field(ge=1, description="Records to keep (fewer when the job has fewer).")
    field: str = Field(description="metadata key whose values the subset is balanced over, e.g. source_set.")
    seed: int = Field(
        0, description="Which records of an over-full group are kept (a stable hash of the id)."
    )


def balanced_quota(counts: dict[str, int], size: int) -> dict[str, int]:
    """Records per group so that the total is `min(size, sum(counts))` and the groups are as equal as their
    sizes allow (water-filling: a small group gives all it has, the rest is shared by the larger ones)."""
    quota = dict.fromkeys(counts, 0)
    left = min(size, sum(counts.values()))
    open_groups = sorted(counts, key=lambda g: (counts[g], g))
    while left and open_groups:
        share, extra = divmod(left, len(open_groups))
        for i, group in enumerate(list(open_groups)):
            take = min(share + (1 if i >= len(open_groups) - extra else 0), counts[group] - quota[group])
            quota[group] += take
            left -= take
        open_groups = [g for g in open_groups if quota[g] < counts[g]]
    return quota


@register_step("balanced_subset")
class BalancedSubset(Filter):
    """Keep `size` records spread evenly over the values of `metadata[field]` (SPEC: the captioner is
    fine-tuned on detailed captions of a distribution-balanced subset). A global step: the selection sees
    the whole job (a signature pass, like dedup); the others are rejected as `not_in_balanced_subset`."""

    Params = BalancedSubsetParams
    is_global = True

    def __init__(self, params: BalancedSubsetParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.dropped: dict[str, str] | None = None

    def signature(self, record: Any) -> str:
        """The record's group (the metadata value as a string; a missing key is its own group)."""
        return str(record.metadata.get(self.params.field))

    def resolve(self, signatures: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        """`{id: group}` of the records left out of the balanced subset."""
        groups: dict[str, list[str]] = {}
        for rid, group in signatures:
            groups.setdefault(str(group), []).append(rid)
        quota = balanced_quota({g: len(ids) for g, ids in groups.items()}, self.params.size)
        dropped: dict[str, str] = {}
        for group, ids in groups.items():
            ranked = sorted(ids, key=lambda rid: hashlib.sha1(f"{self.params.seed}:{rid}".encode()).digest())
            dropped.update((rid, group) for rid in ranked[quota[group] :])
        return dropped

    def setup(self) -> None:
        if self.dropped is None:
            state_dir = self.context.get("state_dir")
            if state_dir is None:
                raise RuntimeError(f"step {self.name} ran before its signature pass was resolved")
            self.dropped = json.loads((Path(state_dir) / DUPLICATES_FILE).read_text())

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        assert self.dropped is not None
        return (False, "not_in_balanced_subset") if record.id in self.dropped else True
