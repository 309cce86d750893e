"""Whole-recipe checks before anything trains: data blocks and files, model paths, globs, budgets (no weights read)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import torch
from torch import nn

from sailvl.data.readers import list_files
from sailvl.errors import ConfigError, SailvlError
from sailvl.model.build import build_from_config, set_vision_drop_path
from sailvl.model.params import GROUPS, module_alias, set_trainable
from sailvl.train.lora import add_stage_lora, check_quantize, fully_trained_modules
from sailvl.train.parallel import DistInfo
from sailvl.train.recipe import Recipe, StageConfig
from sailvl.train.rewards import check_rewards
from sailvl.train.start import StageStart, resolve_start, start_config


def check_recipe(recipe: Recipe, out_dir: str | Path) -> list[str]:
    """Validate every stage of `recipe` as a run into `out_dir` would see it; returns one OK line per stage.

    Checks each stage's merged data block (fully parsed), that every data source has files, the model
    directories, `init_from` directories, trainable / lr_groups globs and reinit names (on a meta-built model:
    no weights are read), ViT drop-path support, and token budgets against the packed row length. The first
    problem raises a ConfigError naming its dotted recipe key, e.g. `stages.4.data.sources.0.path`.
    """
    _check_model_paths(recipe)
    lines, models, previous_config = [], {}, None
    configs: dict[str, object] = {}
    for index, stage in enumerate(recipe.stages):
        data = recipe.stage_data_config(stage)
        files = _check_sources(stage, index, data)
        _check_budget(stage, index, data.max_tokens)
        start = resolve_start(recipe, Path(out_dir), stage, require_export=False)
        config = _start_config(recipe, stage, index, start, previous_config, configs)
        if id(config) not in models:  # one meta model per distinct start (stages of a run share one)
            models[id(config)] = build_from_config(config, device="meta")
        model, previous_config = models[id(config)], config
        if stage.lora is not None:  # adapters change the model: this stage gets its own meta model
            model = _lora_model(config, stage, index)
        trainable = _check_params(model, stage, index)
        if stage.objective == "grpo":
            _check_grpo(stage, index)
        if stage.lora is not None and stage.lora.keep_adapters:
            try:
                fully_trained_modules(model)
            except SailvlError as exc:
                raise ConfigError(f"stages.{index}.lora.keep_adapters: {exc}") from None
        total = sum(p.numel() for p in model.parameters())
        budget = ", ".join(f"{v:,} {k}" for k, v in stage.budget.model_dump().items() if v is not None)
        lines.append(
            f"stage {index} {stage.name}: OK ({files} data files in {len(data.sources)} sources; trainable "
            f"{trainable:,} of {total:,} params; budget {budget}; from {_describe_start(start)})"
        )
    return lines


def _check_grpo(stage: StageConfig, index: int) -> None:
    try:
        check_rewards(stage.grpo.rewards)
    except ConfigError as exc:
        raise ConfigError(f"stages.{index}.grpo.rewards: {exc}") from None
    if stage.grpo.backend == "vllm":
        raise ConfigError(
            f"stages.{index}.grpo.backend: vllm rollouts are not implemented for training yet; use transformers"
        )


def _check_model_paths(recipe: Recipe) -> None:
    spec = recipe.model
    for key in ("path", "vision", "llm"):
        value = getattr(spec, key)
        if value is not None and not (Path(value) / "config.json").is_file():
            raise ConfigError(f"model.{key}: {value} is not a model directory (no config.json there)")
    for key in ("tokenizer", "processor"):
        value = getattr(spec, key)
        if value is not None and not Path(value).is_dir():
            raise ConfigError(f"model.{key}: directory {value} does not exist")


def _data_prefix(stage: StageConfig, index: int) -> str:
    return f"stages.{index}.data" if "sources" in stage.data else "data"


def _check_sources(stage: StageConfig, index: int, data) -> int:
    files = 0
    for j, source in enumerate(data.sources):
        key = f"{_data_prefix(stage, index)}.sources.{j}"
        try:
            files += len(list_files(source.format, source.path))
        except SailvlError as exc:
            raise ConfigError(f"{key}.path: {exc} (stage {stage.name})") from None
        if source.image_root is not None and not Path(source.image_root).is_dir():
            raise ConfigError(
                f"{key}.image_root: directory {source.image_root} does not exist (stage {stage.name})"
            )
    return files


def _check_budget(stage: StageConfig, index: int, max_tokens: int) -> None:
    # A token budget below one packed row is a unit slip (131 meant 131B): the stage would end after one step.
    tokens = stage.budget.tokens
    if tokens is not None and tokens < max_tokens:
        raise ConfigError(
            f"stages.{index}.budget.tokens: {tokens:,} is less than one packed row ({max_tokens:,} tokens); "
            "write counts in full or with a unit, e.g. 131B or 20K"
        )


def _start_config(recipe, stage: StageConfig, index: int, start: StageStart, previous_config, cache: dict):
    if start.kind == "dir" and not (Path(start.path) / "config.json").is_file():
        if stage.init_from == "previous" and previous_config is not None:
            return previous_config  # the previous stage's export, not written yet: same architecture
        key = f"stages.{index}.init_from" if stage.init_from not in ("model", "previous") else "model.path"
        raise ConfigError(f"{key}: {start.path} is not a model directory (no config.json there)")
    key = start.path or start.kind
    if key not in cache:
        try:
            cache[key], _ = start_config(recipe, start)
        except SailvlError as exc:
            raise ConfigError(f"stages.{index}.init_from: {exc}") from None
    return cache[key]


def _check_params(model: nn.Module, stage: StageConfig, index: int) -> int:
    try:
        set_trainable(model, stage.trainable)
    except SailvlError as exc:
        raise ConfigError(f"stages.{index}.trainable: {exc}") from None
    aliases = [module_alias(name) for name, _ in model.named_parameters()]
    for glob in stage.lr_groups:
        if not any(fnmatchcase(a, glob) for a in aliases):
            raise ConfigError(
                f"stages.{index}.lr_groups: {glob!r} matches no parameter; names look like 'vision.*'"
            )
    unknown = [name for name in stage.reinit if name not in GROUPS]
    if unknown:
        raise ConfigError(f"stages.{index}.reinit: {unknown} are not modules; use {', '.join(GROUPS)}")
    try:
        set_vision_drop_path(model, stage.vision_drop_path or 0.0)
    except SailvlError as exc:
        raise ConfigError(f"stages.{index}.vision_drop_path: {exc}") from None
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _lora_model(config, stage: StageConfig, index: int) -> nn.Module:
    try:
        check_quantize(
            stage.lora, DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        )
    except SailvlError as exc:
        raise ConfigError(f"stages.{index}.{exc}") from None
    try:  # the adapters' layers only: no weights to quantise on the meta device
        spec = stage.lora.model_copy(update={"quantize": None})
        return add_stage_lora(build_from_config(config, device="meta"), spec, 0, None)
    except SailvlError as exc:
        raise ConfigError(f"stages.{index}.lora.targets: {exc}") from None


def _describe_start(start: StageStart) -> str:
    if start.kind == "dir":
        return start.path
    return "pretrained parts" if start.kind == "parts" else "a preset's random init"
