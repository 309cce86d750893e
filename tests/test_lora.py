"""LoRA stages: recipe validation, trainable counts, merged exports, PEFT adapter dirs, exact resume, QLoRA refusal."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _train_helpers import make_batch

from sailvl.errors import ConfigError, SailvlError

# Per decoder layer of the tiny preset, LoRA adds r * (in + out) per Linear: q 128+128, k 128+64, v 128+64,
# o 128+128, gate/up 128+512, down 512+128 = 2816 r; the projector's linear_1 256+128, linear_2 128+128 = 640 r.
TINY_LLM_ADAPTERS_PER_RANK = 2 * 2816
TINY_PROJECTOR_ADAPTERS_PER_RANK = 640


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    root = tmp_path_factory.mktemp("lora_world")
    generate_world(root / "world", 40, 0)
    make_tiny_model_dir(root / "world", root / "model", seed=0)
    return root


def _recipe(world, *extra):
    from sailvl.train import load_recipe

    return load_recipe(
        "tiny-lora", [f"vars.world={world / 'world'}", f"vars.model_dir={world / 'model'}", *extra]
    )


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "pixel_values")}
    with torch.no_grad():
        return model(**inputs, use_cache=False).logits


def test_lora_settings_are_validated_at_the_door(world, tmp_path):
    from sailvl.train.check import check_recipe

    with pytest.raises(ConfigError, match=r"stages\.0\.lora\.r"):
        _recipe(world, "stages.0.lora.r=0")
    with pytest.raises(ConfigError, match=r"stages\.0\.lora\.rank"):
        _recipe(world, "stages.0.lora.rank=4")
    with pytest.raises(ConfigError, match=r"stages\.0\.lora\.quantize"):
        _recipe(world, "stages.0.lora.quantize=8bit")
    with pytest.raises(ConfigError, match="nothing would train"):
        _recipe(world, "stages.0.lora=null")
    with pytest.raises(ConfigError, match=r"stages\.0\.lora\.targets: .*'llm\.\*\.qkv'"):
        check_recipe(_recipe(world, "stages.0.lora.targets=[llm.*.qkv]"), tmp_path)
    # The vision tower's layers hold layer-scale vectors (lambda_1) beside the LoRA layers: PEFT cannot save
    # them whole beside the adapters, so keep_adapters with `trainable: [vision.*]` is refused before training.
    bad = [
        "stages.0.lora.targets=[vision.*.q_proj]",
        "stages.0.trainable=[vision.*]",
        "stages.0.lora.keep_adapters=true",
    ]
    with pytest.raises(
        ConfigError, match=r"stages\.0\.lora\.keep_adapters: .*vision_tower\.encoder\.layer\.0"
    ):
        check_recipe(_recipe(world, *bad), tmp_path)
    (line,) = check_recipe(_recipe(world), tmp_path)
    assert "trainable 25,088 of" in line  # r 4: 4 * (5632 + 640) adapter parameters


def test_adapters_train_and_the_layers_they_wrap_stay_frozen():
    from sailvl.model import build_model, count_parameters, set_trainable
    from sailvl.model.params import is_adapter_param, is_wrapped_base_param
    from sailvl.train.lora import add_stage_lora
    from sailvl.train.recipe import LoraSpec

    model = build_model("tiny", seed=0)
    base_total = count_parameters(model)["total"]
    spec = LoraSpec(r=2, targets=["llm.*.self_attn.*_proj", "llm.*.mlp.*_proj"])
    add_stage_lora(model, spec, seed=0, base_path=None)
    rows = {r["module"]: r for r in set_trainable(model, ["projector.*", "llm.*"])}
    adapters = 2 * TINY_LLM_ADAPTERS_PER_RANK
    assert rows["llm"]["params"] == 558_208 + adapters
    # `llm.*` matches the wrapped q/k/v/o and MLP weights too: they stay frozen, the norms and embeddings train.
    wrapped = sum(p.numel() for n, p in model.named_parameters() if is_wrapped_base_param(n))
    assert rows["llm"]["trainable"] == 558_208 + adapters - wrapped
    assert rows["projector"]["frozen"] == 0 and rows["vision"]["trainable"] == 0
    rows = {r["module"]: r for r in set_trainable(model, [])}
    assert rows["llm"]["trainable"] == adapters and rows["projector"]["trainable"] == 0
    assert adapters / (base_total + adapters) < 0.03  # 11,264 of 761,536: 1.5%
    for name, param in model.named_parameters():
        assert param.requires_grad == is_adapter_param(name), name


def test_model_info_counts_trainable_parameters_with_lora():
    from sailvl.model.info import model_info

    plain = model_info("tiny")
    assert "trainable" not in plain
    info = model_info("tiny", trainable=["projector.*"], lora_targets_globs=["llm.*_proj"], lora_r=4)
    assert info["adapters"] == 4 * TINY_LLM_ADAPTERS_PER_RANK
    assert info["trainable"] == info["adapters"] + plain["projector"]
    assert info["total"] == plain["total"] + info["adapters"]


def test_merged_export_equals_base_plus_adapters_and_adapter_dir_loads_in_peft(world, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model, set_trainable
    from sailvl.train.export import export_hf
    from sailvl.train.lora import add_stage_lora
    from sailvl.train.parallel import DistInfo
    from sailvl.train.recipe import LoraSpec

    spec = LoraSpec(r=4, alpha=8, targets=["llm.*_proj", "vision.*.attention.q_proj"])
    model = add_stage_lora(load_model(world / "model", dtype=torch.float32), spec, seed=0, base_path=None)
    set_trainable(model, ["projector.*"])  # trains fully beside the adapters: a PEFT module_to_save
    torch.manual_seed(1)
    with torch.no_grad():  # as after training: B away from its zero init, the projector moved
        for name, param in model.named_parameters():
            if ".lora_B." in name or "multi_modal_projector" in name:
                param.add_(torch.randn_like(param) * 0.05)
    batch = make_batch(0, vocab=400)
    expected = _logits(model, batch)
    base = _logits(load_model(world / "model", dtype=torch.float32), batch)
    assert (expected - base).abs().max() > 1e-2  # the adapters change the outputs

    processor = SailVLProcessor.from_pretrained(world / "model")
    export = export_hf(model, processor, tmp_path / "export", DistInfo(), {"step": 1}, keep_adapters=True)
    merged = load_model(export, dtype=torch.float32)  # strict: a plain model dir, no adapter keys left
    assert not any("lora" in k or "base_layer" in k for k in merged.state_dict())
    torch.testing.assert_close(_logits(merged, batch), expected, atol=1e-5, rtol=0)
    hf = AutoModelForImageTextToText.from_pretrained(export)
    torch.testing.assert_close(_logits(hf, batch), expected, atol=1e-5, rtol=0)

    adapter = export / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    peft_model = PeftModel.from_pretrained(load_model(world / "model", dtype=torch.float32), adapter)
    torch.testing.assert_close(_logits(peft_model, batch), expected, atol=1e-5, rtol=0)


@pytest.mark.slow  # ~29 s: two short training runs
def test_lora_resume_is_exact(world, tmp_path):
    from sailvl.model import load_model
    from sailvl.train.trainer import train_recipe

    extra = [
        "stages.0.budget.steps=6",
        "stages.0.save_every=3",
        "stages.0.keep_last=5",
        "stages.0.lora.dropout=0.1",
    ]
    full = tmp_path / "full"
    (export,) = train_recipe(_recipe(world, *extra), full)
    part = tmp_path / "part"
    shutil.copytree(full, part)
    shutil.rmtree(part / "lora" / "export")
    shutil.rmtree(part / "lora" / "checkpoints" / "step-0000006")
    (resumed,) = train_recipe(_recipe(world, *extra), part, resume="auto")
    assert _losses(part) == _losses(full)
    a, b = load_model(export).state_dict(), load_model(resumed).state_dict()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def test_qlora_without_cuda_is_one_line_error(world, tmp_path):
    from sailvl.train.lora import check_quantize
    from sailvl.train.parallel import DistInfo
    from sailvl.train.recipe import LoraSpec

    with pytest.raises(SailvlError, match="needs a CUDA GPU"):
        check_quantize(LoraSpec(targets=["llm.*"], quantize="4bit"), DistInfo())
    cmd = [
        sys.executable, "-m", "sailvl.cli", "train", "tiny-lora", f"vars.world={world / 'world'}",
        f"vars.model_dir={world / 'model'}", "stages.0.lora.quantize=4bit", "--out", str(tmp_path / "q"),
    ]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["error: stages.0.lora.quantize: 4bit (QLoRA) needs a CUDA GPU; this machine has none"]
    assert not (tmp_path / "q").exists()
