"""HF-native exports: the whole VLM (safetensors + processor) per stage, and the vision tower alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from transformers import InternVLConfig, InternVLForConditionalGeneration

from sailvl.errors import SailvlError
from sailvl.model import load_model, save_model
from sailvl.model.loading import read_model_config
from sailvl.model.lora import adapter_config
from sailvl.train.checkpoint import TRAINER_STATE, is_complete, read_trainer_state, write_trainer_state
from sailvl.train.lora import (
    ADAPTER_DIR,
    dequantized_state_dict,
    fully_trained_modules,
    is_quantized,
    merge_adapters,
    split_lora_state,
)
from sailvl.train.parallel import DistInfo, barrier


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded fp32-or-saved-dtype CPU state dict (a collective under FSDP: call on every rank)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def _fresh_cpu_model(
    config: InternVLConfig, state: dict[str, torch.Tensor]
) -> InternVLForConditionalGeneration:
    # Built on meta and filled by assignment: no second copy of the weights is allocated.
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model


def is_exported(path: Path) -> bool:
    """True when `path` holds a finished export (weights, config and trainer_state.json)."""
    path = Path(path)
    return (
        (path / TRAINER_STATE).is_file()
        and (path / "config.json").is_file()
        and any(path.glob("*.safetensors"))
    )


def export_hf(
    model: nn.Module,
    processor,
    out_dir: Path,
    info: DistInfo,
    trainer_state: dict,
    keep_adapters: bool = False,
) -> Path:
    """Save `model` + `processor` to `out_dir`: sailvl's `load_model` loads it, and with an InternViT tower
    so do AutoModelForImageTextToText / AutoProcessor (other towers are marked `sailvl_internvl`, which plain
    transformers refuses; see sailvl.model.loading).

    Collective under FSDP. Written to a temporary directory and renamed, with trainer_state.json
    ({step, tokens_seen, samples_seen, stage}) beside the weights for scaling fits. A model with LoRA adapters
    is exported with them merged; `keep_adapters` also writes the PEFT adapter directory as `out_dir`/adapter.
    """
    out_dir = Path(out_dir)
    lora = adapter_config(model)
    state = (
        dequantized_state_dict(model) if lora is not None and is_quantized(model) else full_state_dict(model)
    )
    if info.is_main:
        tmp = out_dir.with_name(f".tmp-{out_dir.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        if lora is None:
            export_model = _fresh_cpu_model(model.config, state)
        else:
            plain, adapters = split_lora_state(state)
            adapter_dir = tmp / ADAPTER_DIR if keep_adapters else None
            trained = fully_trained_modules(model) if keep_adapters else []
            export_model = merge_adapters(
                _fresh_cpu_model(model.config, plain), adapters, lora, trained, adapter_dir
            )
        save_model(export_model, tmp)
        processor.save_pretrained(tmp)
        write_trainer_state(tmp, trainer_state)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)
    barrier(info)
    return out_dir


def _load_any(ckpt: Path) -> InternVLForConditionalGeneration:
    """An HF export directory, or a DCP training checkpoint (which carries config.json)."""
    if is_complete(ckpt):
        import torch.distributed.checkpoint as dcp

        # Not InternVLConfig.from_json_file: that turns an AIMv2 vision_config into an InternViT one.
        config = read_model_config(ckpt)
        with torch.device("cpu"):
            model = InternVLForConditionalGeneration(config)
        state = {"app": {"model": model.state_dict()}}
        try:
            dcp.load(state, checkpoint_id=str(ckpt))
        except (RuntimeError, CheckpointException) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise SailvlError(
                f"training checkpoint {ckpt} does not match its config.json: {detail}"
            ) from None
        model.load_state_dict(state["app"]["model"], strict=True)
        return model
    return load_model(ckpt)


def export_vit(ckpt: str | Path, out_dir: str | Path) -> Path:
    """Save the vision tower of a checkpoint or export as its own HF model (AutoModel.from_pretrained loads it).

    The image-processing settings (processor files) are copied alongside when the source has them, and
    trainer_state.json too, so the deliverable records how long it was trained.
    """
    ckpt, out_dir = Path(ckpt), Path(out_dir)
    if not ckpt.is_dir():
        raise SailvlError(f"checkpoint {ckpt} does not exist")
    model = _load_any(ckpt)
    tower = model.model.vision_tower
    tower.save_pretrained(out_dir, safe_serialization=True)
    if (ckpt / TRAINER_STATE).is_file():
        write_trainer_state(out_dir, read_trainer_state(ckpt))
    for name in ("preprocessor_config.json", "sailvl_processor.json"):
        if (ckpt / name).is_file():
            shutil.copy(ckpt / name, out_dir / name)
    return out_dir


def export_llm(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Save the language model of a sailvl model directory as a causal LM (+ its tokenizer) for build_from_parts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model = load_model(model_dir)
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(model.config.text_config)
    llm.model = model.model.language_model
    llm.lm_head = model.lm_head
    llm.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(out_dir)
    return out_dir


def export_step(model, processor, out_dir, stage, info, state: dict) -> None:
    """Every `stage.eval_every` steps (0: never), an HF export of the model as it is into
    OUT/STAGE/exports/step-NNNNNNN for `sailvl eval` (both training loops call it after each step)."""
    if stage.eval_every and state["step"] % stage.eval_every == 0:
        step_dir = Path(out_dir) / stage.name / "exports" / f"step-{state['step']:07d}"
        export_hf(model, processor, step_dir, info, dict(state))
