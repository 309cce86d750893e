"""Metadata selection steps: keep records whose metadata field takes one of the given values (`select`), or a
subset of a given size balanced over a metadata field's values or image clusters (`balanced_subset`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from sailvl.curation.dedup import DUPLICATES_FILE, phash_int
from sailvl.curation.image_checks import read_image_bytes
from sailvl.curation.step import Filter, StepParams, register_step


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
    field: str | None = Field(
        None, description="metadata key whose values are the groups, e.g. source_set; None: `clusters`."
    )
    clusters: int | None = Field(
        None,
        ge=2,
        description="Without `field`: group records by k-means (this many clusters) over the bits of their "
        "first image's pHash (the embedding the dedup step uses).",
    )
    seed: int = Field(
        0, description="Which records of an over-full group are kept (a stable hash of the id)."
    )

    @model_validator(mode="after")
    def _one_grouping(self) -> BalancedSubsetParams:
        if (self.field is None) == (self.clusters is None):
            raise ValueError("balanced_subset needs exactly one of `field` (a metadata key) or `clusters`")
        return self


def kmeans_labels(points: np.ndarray, k: int, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Cluster index of each row of `points` `[n, d]` (Lloyd's k-means, k-means++ start, seeded)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        dist = np.min([((points - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(points[rng.choice(len(points), p=dist / dist.sum())] if dist.sum() else points[0])
    centre = np.array(centres, dtype=np.float64)
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        labels = ((points[:, None, :] - centre[None]) ** 2).sum(-1).argmin(1)
        moved = np.array(
            [points[labels == j].mean(0) if (labels == j).any() else centre[j] for j in range(k)]
        )
        if np.allclose(moved, centre):
            break
        centre = moved
    return labels


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
    """Keep `size` records spread evenly over the values of `metadata[field]`, or over k-means clusters of
    their images' pHash (SPEC: the captioner is fine-tuned on detailed captions of a distribution-balanced
    subset). A global step: the selection sees the whole job (a signature pass, like dedup); the others are
    rejected as `not_in_balanced_subset`."""

    Params = BalancedSubsetParams
    is_global = True

    def __init__(self, params: BalancedSubsetParams | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self.dropped: dict[str, str] | None = None

    def signature(self, record: Any) -> str | None:
        """The record's group: the metadata value as a string (a missing key is its own group), or its
        image's pHash (hex) for clustering (None: no readable image, a group of its own)."""
        p: BalancedSubsetParams = self.params  # type: ignore[assignment]
        if p.field is not None:
            return str(record.metadata.get(p.field))
        try:
            return format(phash_int(read_image_bytes(record.images[0])), "016x") if record.images else None
        except (OSError, ValueError):
            return None

    def resolve(self, signatures: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        """`{id: group}` of the records left out of the balanced subset."""
        p: BalancedSubsetParams = self.params  # type: ignore[assignment]
        pairs = list(signatures)
        if p.clusters is not None:
            hashed = [(rid, sig) for rid, sig in pairs if sig is not None]
            bits = np.array(
                [[(int(sig, 16) >> b) & 1 for b in range(64)] for _, sig in hashed], dtype=np.float64
            )
            labels = kmeans_labels(bits, p.clusters, p.seed) if len(hashed) else []
            named = {rid: f"cluster-{label}" for (rid, _), label in zip(hashed, labels, strict=True)}
            pairs = [(rid, named.get(rid, "no-image")) for rid, _ in pairs]
        groups: dict[str, list[str]] = {}
        for rid, group in pairs:
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
