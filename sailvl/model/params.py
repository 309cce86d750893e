"""Parameter bookkeeping: vision/projector/llm aliases, freezing by glob, parameter counts."""

from __future__ import annotations

import fnmatch

from torch import nn

from sailvl.errors import SailvlError

GROUPS = ("vision", "projector", "llm")
# HF parameter-name prefixes of each group; lm_head belongs to the LLM.
_PREFIXES = (
    ("model.vision_tower.", "vision."),
    ("model.multi_modal_projector.", "projector."),
    ("model.language_model.", "llm."),
    ("lm_head.", "llm.lm_head."),
)


# peft's LoRA names: `<layer>.lora_A.default.weight` trains, `<layer>.base_layer.weight` is the wrapped Linear.
_ADAPTER_PARTS = (".lora_A.", ".lora_B.")
_BASE_PART = ".base_layer."


def is_adapter_param(name: str) -> bool:
    """True for a LoRA adapter parameter (lora_A / lora_B, peft's naming)."""
    return any(part in name for part in _ADAPTER_PARTS)


def is_wrapped_base_param(name: str) -> bool:
    """True for a parameter of a Linear that a LoRA layer wraps (frozen while its adapters train)."""
    return _BASE_PART in name


def base_param_name(name: str) -> str:
    """The name a LoRA-wrapped parameter has in the plain model (`x.base_layer.weight` -> `x.weight`)."""
    return name.replace(_BASE_PART, ".")


def module_alias(param_name: str) -> str:
    """Map an HF parameter name to `vision.<rest>`, `projector.<rest>` or `llm.<rest>` (lm_head -> llm.lm_head)."""
    for prefix, alias in _PREFIXES:
        if param_name.startswith(prefix):
            return alias + param_name[len(prefix) :]
    raise ValueError(f"parameter {param_name!r} belongs to none of the vision, projector or llm modules")


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Parameters (HF name, tensor) grouped into `vision`, `projector`, `llm`; tied weights appear once."""
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in GROUPS}
    for name, param in model.named_parameters():
        groups[module_alias(name).split(".", 1)[0]].append((name, param))
    return groups


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Number of parameters (elements) in `vision`, `projector`, `llm` and `total`; tied weights count once."""
    counts = {g: sum(p.numel() for _, p in params) for g, params in parameter_groups(model).items()}
    counts["total"] = sum(counts[g] for g in GROUPS)
    return counts


def set_trainable(model: nn.Module, globs: list[str]) -> list[dict]:
    """Make trainable exactly the parameters whose alias matches one of `globs` (fnmatch); freeze the rest.

    Globs are over aliased names, e.g. `["projector.*"]`, `["vision.*", "projector.*"]`, `["*"]`,
    `["llm.layers.1*"]`. A glob matching nothing raises (it is almost always a typo). Returns one row per
    group: `{"module", "params", "trainable", "frozen"}` (counts in elements) for the freeze table.
    In a model with LoRA layers (`sailvl.model.lora`) the adapters always train and the Linear layers they wrap
    stay frozen, whatever the globs say.
    """
    matched = dict.fromkeys(globs, False)
    for name, param in model.named_parameters():
        alias = module_alias(name)
        hits = [g for g in globs if fnmatch.fnmatchcase(alias, g)]
        for g in hits:
            matched[g] = True
        trains = bool(hits) and not is_wrapped_base_param(name)
        param.requires_grad_(trains or is_adapter_param(name))
    unused = [g for g, hit in matched.items() if not hit]
    if unused:
        raise SailvlError(
            f"trainable pattern(s) {unused} match no parameter; names look like 'vision.*', 'llm.*'"
        )
    return freeze_table(model)


def freeze_table(model: nn.Module) -> list[dict]:
    """Rows `{"module", "params", "trainable", "frozen"}` per group (element counts), in vision/projector/llm order."""
    rows = []
    for group, params in parameter_groups(model).items():
        total = sum(p.numel() for _, p in params)
        trainable = sum(p.numel() for _, p in params if p.requires_grad)
        rows.append({"module": group, "params": total, "trainable": trainable, "frozen": total - trainable})
    return rows
