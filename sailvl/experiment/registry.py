"""Experiment name -> module (each with NAME, CLAIM, plan(), verdict(), optional x_of() and X_LABEL)."""

from __future__ import annotations

from types import ModuleType

from sailvl.errors import SailvlError
from sailvl.experiment import curriculum, recaption, scaling, vit_transfer

EXPERIMENTS: dict[str, ModuleType] = {m.NAME: m for m in (recaption, curriculum, scaling, vit_transfer)}


def get_experiment(name: str) -> ModuleType:
    """The experiment called `name` (SailvlError listing the known names otherwise)."""
    if name not in EXPERIMENTS:
        raise SailvlError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]
