"""Released vision towers saved alone (SAILViT-Large / -Huge, AIMv2, InternViT remote code) as HF modules."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModel

from sailvl.errors import SailvlError
from sailvl.model.convert_config import remote_vision_to_hf
from sailvl.model.convert_keys import remote_to_hf
from sailvl.model.families import FAMILIES, Family

_PREFIX = "vision_model."
_HF_PREFIX = "model.vision_tower."


def _tower_family(config: dict) -> Family | None:
    if isinstance(config.get("vision_config"), dict) or "llm_config" in config:
        return None
    return next((f for f in FAMILIES.values() if f.vision_type == config.get("model_type")), None)


def is_released_tower(directory: Path) -> bool:
    """Whether `directory` holds a released remote-code tower alone (config model_type sailvit / aimv2 /
    intern_vit_6b), which transformers' AutoConfig cannot read as is."""
    try:
        return _tower_family(json.loads((directory / "config.json").read_text())) is not None
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def released_tower_config(directory: Path):
    """(HF vision config, has a CLS token) of the released tower in `directory`."""
    config = json.loads((directory / "config.json").read_text())
    family = _tower_family(config)
    if family is None:
        raise SailvlError(f"{directory} is not a released SAIL-VL vision tower")
    hf = dict(remote_vision_to_hf(config, family))
    return AutoConfig.for_model(hf.pop("model_type"), **hf), family.key_layout == "internvit"


def load_released_tower(directory: Path, dtype: torch.dtype) -> nn.Module:
    """The released tower in `directory` as an HF vision model; weights are renamed as in `sailvl convert`
    and loaded strictly (a missing or unknown weight raises naming it)."""
    config = json.loads((directory / "config.json").read_text())
    family = _tower_family(config)
    hf_config, _ = released_tower_config(directory)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise SailvlError(f"{directory} has no .safetensors weights (other formats are not read)")
    state = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                name = key if key.startswith(_PREFIX) else _PREFIX + key
                state[name] = handle.get_tensor(key)
    try:
        renamed = remote_to_hf(state, family.key_layout)
    except ValueError as exc:
        raise SailvlError(f"cannot read the tower in {directory}: {exc}") from None
    # Built on the CPU, not the meta device: non-persistent buffers (AIMv2's position_ids) are not in the file.
    with torch.device("cpu"):
        tower = AutoModel.from_config(hf_config)
    try:
        tower.load_state_dict({k.removeprefix(_HF_PREFIX): v for k, v in renamed.items()}, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise SailvlError(f"weights in {directory} do not fit its config: {detail}") from None
    return tower.to(dtype)
