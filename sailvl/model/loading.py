"""Strict loading and saving of sailvl / HF-native InternVL model directories (safetensors only)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration

from sailvl.errors import SailvlError
from sailvl.model.presets import HF_MODEL_TYPE, MODEL_TYPES, SAILVL_MODEL_TYPE, config_from_dict
from sailvl.model.vision_fixes import apply_vision_fixes

_HF_VISION_TYPE = "internvl_vision"


def layout_model_type(vision_model_type: str) -> str:
    """`model_type` a model with this vision tower is saved under: "internvl" (plain transformers loads it)
    for an InternViT tower, "sailvl_internvl" (only sailvl loads it) for any other tower (AIMv2, SigLIP)."""
    return HF_MODEL_TYPE if vision_model_type == _HF_VISION_TYPE else SAILVL_MODEL_TYPE


def mark_layout(directory: str | Path) -> None:
    """Rewrite the model_type in `directory`/config.json after `save_pretrained` (see SAILVL_MODEL_TYPE)."""
    config_file = Path(directory) / "config.json"
    config = json.loads(config_file.read_text())
    vision_type = (config.get("vision_config") or {}).get("model_type", _HF_VISION_TYPE)
    model_type = layout_model_type(vision_type)
    if config.get("model_type") != model_type:
        config["model_type"] = model_type
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config_file(path: Path) -> dict:
    """The config.json dict of the sailvl / HF InternVL model directory `path` (either model_type)."""
    if not path.is_dir():
        raise SailvlError(f"model directory {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SailvlError(f"model directory {path} has no config.json")
    try:
        data = json.loads(config_file.read_text())
        model_type = data.get("model_type")
    except (json.JSONDecodeError, AttributeError):
        raise SailvlError(f"{config_file} is not a valid JSON config") from None
    if model_type not in MODEL_TYPES:
        hint = " (convert it with `sailvl convert --from sailvl-remote --to hf`)" if model_type else ""
        raise SailvlError(f"{path} holds a {model_type!r} model, expected an 'internvl' model{hint}")
    return data


def read_model_config(path: str | Path) -> InternVLConfig:
    """The `InternVLConfig` of a model directory (or DCP checkpoint) `path`, vision tower type kept."""
    return config_from_dict(read_config_file(Path(path)))


def _check_model_dir(path: Path) -> dict:
    data = read_config_file(path)
    if not any(path.glob("*.safetensors")):
        raise SailvlError(
            f"model directory {path} has no .safetensors weights (other formats are not loaded)"
        )
    return data


def load_model(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> InternVLForConditionalGeneration:
    """Load an `InternVLForConditionalGeneration` from `path`; any missing, unexpected or mis-shaped key raises.

    Only safetensors weights are read and remote code is never run. `dtype=None` keeps the saved dtype.
    """
    path = Path(path)
    config = config_from_dict(_check_model_dir(path))
    try:
        model, info = InternVLForConditionalGeneration.from_pretrained(
            path,
            config=config,
            dtype=dtype if dtype is not None else "auto",
            use_safetensors=True,
            trust_remote_code=False,
            output_loading_info=True,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SailvlError(f"could not load the model in {path}: {first_line}") from exc
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(kind, []) or [])
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {kind.replace('_', ' ')} ({shown})")
    if problems:
        raise SailvlError(f"weights in {path} do not match the model config: {'; '.join(problems)}")
    model = model.to(device).eval()
    return apply_vision_fixes(model)


def save_model(model: InternVLForConditionalGeneration, path: str | Path) -> Path:
    """Save `model` (config, generation config, safetensors weights) to `path`; returns the directory.

    A model whose vision tower is not InternViT is marked `sailvl_internvl` (see SAILVL_MODEL_TYPE)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    mark_layout(path)
    return path
