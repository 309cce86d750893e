"""DCP checkpoints of Stateful app state: temp name then rename, keep last K, `--resume auto`."""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from sailvl.errors import SailvlError
from sailvl.train.parallel import DistInfo, barrier

log = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.json"
_PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    """RNG states: torch CPU (and current CUDA device) as uint8 tensors, Python and NumPy as JSON text."""
    np_state = np.random.get_state()
    host = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    state = {"torch": torch.get_rng_state(), "host": json.dumps(host)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() returned."""
    host = json.loads(state["host"])
    version, internal, gauss = host["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = host["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class AppState:
    """Stateful bundle for DCP: model + optimizer (sharded tensors) and per-rank loader/RNG/trainer state.

    Per-rank entries use rank-suffixed keys because DCP keeps one copy of each non-tensor key. DCP loads
    into the structure it is given, so variable-shape state (the loader's) travels as one JSON string.
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, loader: Any, trainer: dict, rank: int
    ):
        self.model, self.optimizer, self.loader, self.trainer, self.rank = (
            model,
            optimizer,
            loader,
            trainer,
            rank,
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly."""
        return {
            "model": get_model_state_dict(self.model),
            "optim": get_optimizer_state_dict(self.model, self.optimizer),
            "trainer": dict(self.trainer),
            f"rank{self.rank}": {"loader": json.dumps(self.loader.state_dict()), "rng": rng_state()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of state_dict()."""
        set_model_state_dict(self.model, state["model"])
        set_optimizer_state_dict(self.model, self.optimizer, state["optim"])
        self.trainer.clear()
        self.trainer.update(state["trainer"])
        self.loader.load_state_dict(json.loads(state[f"rank{self.rank}"]["loader"]))
        set_rng_state(state[f"rank{self.rank}"]["rng"])


def step_dir_name(step: int) -> str:
    """Directory name of the checkpoint after `step` optimizer steps."""
    return f"{_PREFIX}{step:07d}"


def is_complete(path: Path) -> bool:
    """A checkpoint is complete when DCP's metadata and trainer_state.json were both written."""
    return (path / ".metadata").is_file() and (path / TRAINER_STATE).is_file()


def list_checkpoints(root: Path, warn: bool = True) -> list[Path]:
    """Complete checkpoints under `root`, oldest first; incomplete ones are skipped with a warning."""
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.iterdir()):
        if not p.is_dir():
            continue
        if p.name.startswith(_PREFIX) and is_complete(p):
            found.append(p)
        elif warn and (p.name.startswith(_PREFIX) or p.name.startswith(".tmp-")):
            log.warning("ignoring incomplete checkpoint %s", p)
    return found


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def write_trainer_state(path: Path, trainer: dict) -> None:
    """Write {step, tokens_seen, samples_seen, stage, ...} as trainer_state.json in `path`."""
    (path / TRAINER_STATE).write_text(json.dumps(trainer, indent=2, sort_keys=True) + "\n")


def read_trainer_state(path: Path) -> dict:
    """Read trainer_state.json from a checkpoint or export directory."""
    f = Path(path) / TRAINER_STATE
    if not f.is_file():
        raise SailvlError(f"{path} has no {TRAINER_STATE}; expected a sailvl checkpoint or export directory")
    return json.loads(f.read_text())


class CheckpointManager:
    """Saves to `root/.tmp-step-N`, renames to `root/step-N` when every rank is done, keeps the last K."""

    def __init__(self, root: Path, info: DistInfo, keep_last: int = 2, model_config: Any = None):
        self.root, self.info, self.keep_last, self.model_config = Path(root), info, keep_last, model_config

    def save(self, app: AppState) -> Path:
        """Write a checkpoint of `app` after step app.trainer['step']; returns its final directory."""
        step = int(app.trainer["step"])
        final = self.root / step_dir_name(step)
        tmp = self.root / f".tmp-{step_dir_name(step)}"
        if self.info.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier(self.info)
        dcp.save({"app": app}, checkpoint_id=str(tmp))
        barrier(self.info)
        if self.info.is_main:
            if self.model_config is not None:
                self.model_config.to_json_file(str(tmp / "config.json"))
            write_trainer_state(tmp, app.trainer)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in list_checkpoints(self.root, warn=False)[: -self.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.info)
        return final

    def load(self, app: AppState, path: Path) -> None:
        """Restore `app` in place from the checkpoint directory `path`."""
        if not is_complete(Path(path)):
            raise SailvlError(f"{path} is not a complete sailvl checkpoint (no .metadata or {TRAINER_STATE})")
        dcp.load({"app": app}, checkpoint_id=str(path))
