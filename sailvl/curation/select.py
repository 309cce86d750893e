"""Metadata selection step: keep records whose metadata field takes one of the given values."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sailvl.curation.base import Filter, StepParams, register_step


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
