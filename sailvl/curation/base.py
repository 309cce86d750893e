"""The curation step registry: every built-in step module, and `build_step` / `get_step_class` to make a step
from a pipeline's `{type: name, ...}` mapping. The base classes live in `step.py` (re-exported here); step
modules import that leaf, never this module, so the registry imports its plug-ins without a circle."""

from __future__ import annotations

from typing import Any

from sailvl.config import parse_config

# The built-in steps register themselves on import (`@register_step`).
from sailvl.curation import (  # noqa: F401
    dedup,
    image_checks,
    judge,
    qa_synthesis,
    recaption,
    scoring,
    select,
    text_checks,
)
from sailvl.curation.step import (
    STEPS,
    BatchParams,
    BatchStep,
    Filter,
    RejectSink,
    Step,
    StepParams,
    register_step,
)
from sailvl.errors import ConfigError

__all__ = [
    "STEPS",
    "BatchParams",
    "BatchStep",
    "Filter",
    "RejectSink",
    "Step",
    "StepParams",
    "build_step",
    "get_step_class",
    "register_step",
]


def get_step_class(name: str) -> type[Step]:
    """Look up a step type; raises ConfigError listing the known names."""
    if name not in STEPS:
        raise ConfigError(f"unknown curation step type {name!r}; known: {', '.join(sorted(STEPS))}")
    return STEPS[name]


def build_step(spec: dict[str, Any]) -> Step:
    """Build a step from a mapping `{type: name, **params}` (params validated by the step's schema)."""
    if "type" not in spec:
        raise ConfigError(f"curation step {spec!r} has no 'type' key")
    params = dict(spec)
    cls = get_step_class(params.pop("type"))
    return cls(parse_config(cls.Params, params))
