"""Thin typer commands: each parses arguments and calls one library function."""

import importlib

from sailvl.cli.app import app, main

# One module per area; each registers its commands on the objects in sailvl.cli.app.
COMMAND_MODULES = [
    "model",
    "synth",
    "data",
    "train",
    "curate",
    "evaluate",
    "serve",
    "demo",
    "experiment",
    "bench",
]
_registered = False


def register_commands() -> None:
    """Import every command module once; each registers its commands on the objects in sailvl.cli.app."""
    global _registered
    if _registered:
        return
    for name in COMMAND_MODULES:
        importlib.import_module(f"sailvl.cli.{name}")
    _registered = True


__all__ = ["app", "main", "register_commands"]
