"""LoRA adapters in a VLM (peft): Linear layers chosen by alias glob, adapters injected in place, names of their parts."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

import torch
from torch import nn

from sailvl.errors import SailvlError
from sailvl.model.params import is_adapter_param, module_alias

if TYPE_CHECKING:
    from peft import LoraConfig

ADAPTER = "default"  # peft's adapter name; one adapter per stage


def import_peft():
    """The peft package (an optional dependency: the `train` extra), or a one-sentence SailvlError."""
    try:
        import peft
    except ImportError:
        raise SailvlError(
            "LoRA needs the peft package (pip install 'sailvl[train]' or pip install peft)"
        ) from None
    return peft


def module_alias_of(module_name: str) -> str:
    """A module's alias (`model.language_model.layers.0.self_attn.q_proj` -> `llm.layers.0.self_attn.q_proj`)."""
    return module_alias(module_name + ".weight")[: -len(".weight")]


def lora_targets(model: nn.Module, globs: list[str]) -> list[str]:
    """Full names of the Linear layers whose alias matches one of `globs` (fnmatch), in model order.

    The LM head is left out: it shares its weight with the token embeddings, so a merged adapter would untie them.
    A glob that matches no Linear layer raises (it is almost always a typo).
    """
    matched = dict.fromkeys(globs, False)
    targets = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.rsplit(".", 1)[-1] == "lm_head":
            continue
        alias = module_alias_of(name)
        hits = [g for g in globs if fnmatch.fnmatchcase(alias, g)]
        for g in hits:
            matched[g] = True
        if hits:
            targets.append(name)
    unused = [g for g, hit in matched.items() if not hit]
    if unused:
        raise SailvlError(
            f"lora target(s) {unused} match no Linear layer; names look like 'llm.layers.0.self_attn.q_proj', "
            "'vision.encoder.layer.0.attention.q_proj', 'projector.linear_1'"
        )
    return targets


def lora_config(
    targets: list[str], r: int, alpha: float, dropout: float, base_path: str | None = None
) -> LoraConfig:
    """peft's LoraConfig for exactly the Linear layers named in `targets` (full module names)."""
    return import_peft().LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        bias="none",
        base_model_name_or_path=base_path,
    )


def inject_lora(model: nn.Module, config: LoraConfig, seed: int) -> nn.Module:
    """Wrap `config`'s target layers in LoRA layers, in place (the model keeps its class, forward and names).

    Adapters start as peft initialises them (A random, B zero: the model's outputs do not change), drawn from
    `seed` without touching the global RNG, so every rank and every run starts identical. Only the adapters
    are left trainable; the caller's `set_trainable` then adds what trains fully.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        import_peft().inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    return model


def adapter_config(model: nn.Module) -> LoraConfig | None:
    """The LoraConfig injected into `model` by `inject_lora`, or None for a model without adapters."""
    configs = getattr(model, "peft_config", None)
    return configs.get(ADAPTER) if isinstance(configs, dict) else None


def adapter_parameter_count(model: nn.Module) -> int:
    """Number of LoRA adapter parameters (elements) in `model`."""
    return sum(p.numel() for name, p in model.named_parameters() if is_adapter_param(name))
