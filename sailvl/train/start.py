"""Where a stage starts: its weight source, the model on every rank (meta, rank 0 reads), and the clock it continues."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from sailvl.data.processor import SailVLProcessor
from sailvl.errors import SailvlError
from sailvl.model.build import (
    build_from_config,
    build_from_parts,
    parts_config,
    parts_tokenizer,
    preset_config,
)
from sailvl.model.loading import load_model
from sailvl.model.params import module_alias
from sailvl.model.presets import config_from_dict
from sailvl.train.checkpoint import TRAINER_STATE, read_trainer_state
from sailvl.train.export import is_exported
from sailvl.train.lora import add_stage_lora, check_quantize
from sailvl.train.parallel import DistInfo
from sailvl.train.recipe import Recipe, StageConfig

# The counters that run across stages (one clock); each stage also keeps its own `stage_*` twins.
CLOCK_KEYS = ("tokens_seen", "samples_seen", "global_step")


@dataclass
class StageStart:
    """Where a stage's weights come from: a model directory, pretrained parts, or a preset's random init.

    `clock` holds the cumulative counters the stage continues from (zeros at the recipe's model).
    """

    kind: Literal["dir", "parts", "preset"]
    path: str | None = None
    clock: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLOCK_KEYS, 0))


def stage_export_dir(out_dir: Path, stage_name: str) -> Path:
    """Where the HF export of a finished stage lives."""
    return Path(out_dir) / stage_name / "export"


def read_clock(path: Path) -> dict[str, int]:
    """The cumulative counters recorded in `path`/trainer_state.json (an older file without
    `global_step` counts its `step`)."""
    state = read_trainer_state(path)
    clock = {key: int(state.get(key, 0)) for key in CLOCK_KEYS}
    clock["global_step"] = int(state.get("global_step", state.get("step", 0)))
    return clock


def resolve_start(
    recipe: Recipe, out_dir: Path, stage: StageConfig, require_export: bool = True
) -> StageStart:
    """The stage's weight source. `init_from: previous` continues the previous stage's export and its clock;
    an explicit directory continues its clock when it carries a trainer_state.json; the recipe's model is
    time zero. With `require_export=False` (recipe checks) a previous export that does not exist yet is fine.
    """
    index = recipe.stages.index(stage)
    if stage.init_from == "model" or (stage.init_from == "previous" and index == 0):
        spec = recipe.model
        if spec.path is not None:
            return StageStart("dir", spec.path)
        return StageStart("preset") if spec.preset is not None else StageStart("parts")
    if stage.init_from == "previous":
        previous_name = recipe.stages[index - 1].name
        previous = stage_export_dir(out_dir, previous_name)
        if not is_exported(previous):
            if require_export:
                raise SailvlError(
                    f"stage {stage.name} starts from stage {previous_name}, but {previous} is not exported yet"
                )
            return StageStart("dir", str(previous))
        return StageStart("dir", str(previous), read_clock(previous))
    path = Path(stage.init_from)
    clock = read_clock(path) if (path / TRAINER_STATE).is_file() else StageStart("dir").clock
    return StageStart("dir", str(path), clock)


def start_config(recipe: Recipe, start: StageStart, config_dir: str | None = None):
    """(InternVLConfig, SailVLProcessor) of a stage start, from config and tokenizer files only: no weights.

    `config_dir` replaces `start.path` as the directory to read config.json from (a previous export that
    does not exist yet is checked against the recipe's model).
    """
    spec = recipe.model
    if start.kind == "dir":
        directory = Path(config_dir or start.path)
        config_file = directory / "config.json"
        if not config_file.is_file():
            raise SailvlError(f"model directory {directory} has no config.json")
        processor = SailVLProcessor.from_pretrained(spec.processor or directory)
        return config_from_dict(json.loads(config_file.read_text())), processor
    if start.kind == "preset":
        processor = SailVLProcessor.from_pretrained(spec.processor)
        return preset_config(spec.preset, processor.tokenizer), processor
    tokenizer = parts_tokenizer(spec.llm, spec.tokenizer)
    config = parts_config(spec.vision, spec.llm, tokenizer)
    if spec.processor is not None:
        return config, SailVLProcessor.from_pretrained(spec.processor)
    return config, SailVLProcessor.for_model(tokenizer, config)


def read_start_weights(recipe: Recipe, start: StageStart, config) -> nn.Module:
    """The full fp32 CPU model of a stage start (weights read from disk, or a seeded random init)."""
    spec = recipe.model
    if start.kind == "dir":
        return load_model(start.path, dtype=torch.float32)
    if start.kind == "preset":
        return build_from_config(config, device="cpu", seed=recipe.seed)
    torch.manual_seed(recipe.seed)
    model, _ = build_from_parts(spec.vision, spec.llm, spec.tokenizer)
    return model


def reinit_modules(model: nn.Module, aliases: list[str], seed: int) -> None:
    """Re-initialise every module whose parameters all live under one of `aliases` (e.g. `projector`)."""
    torch.manual_seed(seed)
    touched = set()
    for name, module in model.named_modules():
        params = list(module.named_parameters(recurse=False))
        if not params or not hasattr(module, "reset_parameters"):
            continue
        prefix = f"{name}." if name else ""
        if any(module_alias(prefix + p).split(".", 1)[0] in aliases for p, _ in params):
            module.reset_parameters()
            touched.add(name)
    if not touched:
        raise SailvlError(f"reinit {aliases} matched no module; use vision, projector or llm")


@dataclass
class StartedModel:
    """A stage's model on this rank; with `broadcast`, its weights arrive from rank 0's `full_state` after sharding."""

    model: nn.Module
    processor: SailVLProcessor
    broadcast: bool = False
    full_state: dict[str, torch.Tensor] | None = None  # rank 0 only


def start_model(recipe: Recipe, start: StageStart, stage: StageConfig, info: DistInfo) -> StartedModel:
    """The stage's model on this rank (loaded, or on the meta device) and its processor.

    One process gets the loaded model itself. With several, every rank builds the model on the meta device
    and only rank 0 reads the weights (and re-initialises `stage.reinit`); after sharding, the trainer
    broadcasts them tensor by tensor into each rank's shards, so no other rank holds a full copy. A preset
    with `parallel.meta_init` reads nothing: every rank initialises its shards. A stage with `lora` gets its
    adapters here, before sharding (seeded: the same on every rank and in one process).
    """
    check_quantize(stage.lora, info)
    config, processor = start_config(recipe, start)
    seed = recipe.seed + recipe.stages.index(stage)
    random_shards = start.kind == "preset" and recipe.parallel.meta_init
    if stage.lora is not None and random_shards:
        raise SailvlError(
            f"stage {stage.name}: lora needs start weights to adapt; parallel.meta_init builds a random preset"
        )
    if info.world_size == 1 and not random_shards:
        model = read_start_weights(recipe, start, config)
        if stage.reinit:
            reinit_modules(model, stage.reinit, seed)
        return StartedModel(add_stage_lora(model, stage.lora, seed, start.path), processor)
    meta_model = add_stage_lora(build_from_config(config, device="meta"), stage.lora, seed, start.path)
    started = StartedModel(meta_model, processor, broadcast=not random_shards)
    if info.is_main and started.broadcast:
        source = read_start_weights(recipe, start, config)
        if stage.reinit:
            reinit_modules(source, stage.reinit, seed)
        # The adapters' start values travel with the base weights, so every rank starts as one process would.
        source = add_stage_lora(source, stage.lora, seed, start.path)
        started.model.generation_config = source.generation_config
        started.full_state = source.state_dict()
    return started
