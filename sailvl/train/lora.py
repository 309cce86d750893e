"""A stage's LoRA / QLoRA (`lora:` in the recipe): adapters before sharding, 4-bit bases, merged exports, adapter dirs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from sailvl.errors import SailvlError
from sailvl.model.lora import ADAPTER, adapter_config, import_peft, inject_lora, lora_config, lora_targets
from sailvl.model.params import base_param_name, is_adapter_param, is_wrapped_base_param
from sailvl.train.parallel import DistInfo
from sailvl.train.recipe import LoraSpec

if TYPE_CHECKING:
    from peft import LoraConfig

ADAPTER_DIR = "adapter"  # inside a stage export, with `lora.keep_adapters`


def check_quantize(spec: LoraSpec | None, info: DistInfo) -> None:
    """Refuse `lora.quantize` where it cannot run, in one sentence: it needs CUDA, bitsandbytes and one process
    without an FSDP2 wrapper (bitsandbytes' 4-bit weights are not DTensor-shardable)."""
    if spec is None or spec.quantize is None:
        return
    if info.device.type != "cuda":
        raise SailvlError(f"lora.quantize: {spec.quantize} (QLoRA) needs a CUDA GPU; this machine has none")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise SailvlError(
            f"lora.quantize: {spec.quantize} needs the bitsandbytes package (pip install bitsandbytes)"
        ) from None
    if info.mesh is not None:
        raise SailvlError(
            "lora.quantize runs in one process without FSDP2 (set parallel.fsdp_one_device: false, no torchrun)"
        )


def quantize_targets(model: nn.Module, targets: list[str]) -> None:
    """Replace each target Linear with a bitsandbytes 4-bit NF4 Linear (quantised when moved to CUDA);
    peft then wraps those in its 4-bit LoRA layers."""
    import bitsandbytes as bnb

    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent, linear = model.get_submodule(parent_name), model.get_submodule(name)
        quantized = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=torch.bfloat16,
            quant_type="nf4",
        )
        quantized.weight = bnb.nn.Params4bit(linear.weight.data, requires_grad=False, quant_type="nf4")
        if linear.bias is not None:
            quantized.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        setattr(parent, child, quantized)


def add_stage_lora(model: nn.Module, spec: LoraSpec | None, seed: int, base_path: str | None) -> nn.Module:
    """Inject the stage's LoRA adapters into `model` in place (a no-op without `lora`); before sharding.

    Every rank injects into its (meta) model the same layers; the adapters' values come from `seed`, so the
    rank that reads the weights and a single process produce the same start.
    """
    if spec is None:
        return model
    targets = lora_targets(model, spec.targets)
    if spec.quantize is not None:
        quantize_targets(model, targets)
    return inject_lora(model, lora_config(targets, spec.r, spec.alpha, spec.dropout, base_path), seed)


def is_quantized(model: nn.Module) -> bool:
    """True when some layer holds bitsandbytes 4-bit weights."""
    return any(type(p).__name__ == "Params4bit" for p in model.parameters())


def dequantized_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """fp32 CPU state dict of a (one-process) QLoRA model, 4-bit base weights dequantised."""
    import bitsandbytes as bnb

    state = {}
    for name, param in model.named_parameters():
        if type(param).__name__ == "Params4bit":
            param = bnb.functional.dequantize_4bit(param.data, param.quant_state)
        state[name] = param.detach().float().cpu()
    for name, buffer in model.named_buffers():
        state[name] = buffer.detach().cpu()
    return state


def split_lora_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(plain model state with wrapped base weights under their plain names, adapter tensors)."""
    plain = {base_param_name(k): v for k, v in state.items() if not is_adapter_param(k)}
    adapters = {k: v for k, v in state.items() if is_adapter_param(k)}
    return plain, adapters


def fully_trained_modules(model: nn.Module) -> list[str]:
    """Modules owning a parameter that trains fully beside the adapters (`trainable`): PEFT's `modules_to_save`.

    A module holding LoRA layers cannot be saved whole beside them, so such a `trainable` is refused here.
    """
    owners: list[str] = []
    for name, param in model.named_parameters():
        if param.requires_grad and not is_adapter_param(name) and not is_wrapped_base_param(name):
            owner = name.rsplit(".", 1)[0]
            if owner not in owners:
                owners.append(owner)
    config = adapter_config(model)
    targets = list(config.target_modules) if config is not None else []
    for owner in owners:
        if any(t.startswith(owner + ".") for t in targets):
            raise SailvlError(
                f"lora.keep_adapters: `trainable` trains {owner} fully, which holds LoRA layers; PEFT can only "
                "save whole modules beside adapters (narrow `trainable`, or drop keep_adapters)"
            )
    return owners


def merge_adapters(
    plain: nn.Module,
    adapters: dict[str, torch.Tensor],
    config: LoraConfig,
    trained_modules: list[str],
    adapter_dir: Path | None = None,
) -> nn.Module:
    """The plain model with the adapters merged into its Linear weights (W + alpha/r * B @ A), through peft.

    `plain` holds the trained non-adapter weights. With `adapter_dir`, the PEFT adapter directory is written first:
    the adapters plus `trained_modules` (what `trainable` trained fully), loadable with
    `PeftModel.from_pretrained(<the stage's start model>, adapter_dir)`.
    """
    config = copy.deepcopy(config)
    config.modules_to_save = trained_modules or None
    with torch.random.fork_rng(devices=[]):  # peft draws fresh adapters that are overwritten below
        peft_model = import_peft().get_peft_model(plain, config, adapter_name=ADAPTER)
    inner = peft_model.base_model.model
    result = inner.load_state_dict(adapters, strict=False)
    missing = [k for k in result.missing_keys if is_adapter_param(k)]
    if result.unexpected_keys or missing:
        raise SailvlError(
            f"the adapters do not match the LoRA config (unexpected {result.unexpected_keys[:3]}, "
            f"missing {missing[:3]})"
        )
    if adapter_dir is not None:
        peft_model.save_pretrained(str(adapter_dir))
    return peft_model.merge_and_unload()
