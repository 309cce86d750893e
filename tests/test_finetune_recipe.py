"""The shipped finetune.yaml from a converted released checkpoint: --check, a short run, and back to the release."""

import json

import pytest
import torch
from _released_layouts import write_release
from PIL import Image
from safetensors.torch import load_file

from sailvl.cli import main
from sailvl.data.processor import SailVLProcessor
from sailvl.model import load_model


def _run(*args):
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    return code


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny SAIL-VL2 release converted with the CLI, and a JSONL of 8 image conversations."""
    root = tmp_path_factory.mktemp("finetune")
    release = write_release(root / "release", "sail-vl2")
    assert _run("convert", root / "release", root / "hf", "--from", "sailvl-remote", "--to", "hf") == 0
    rows = []
    for i, colour in enumerate(["red", "blue", "green", "yellow"] * 2):
        Image.new("RGB", (224 + 56 * i, 112), colour).save(root / f"{i}.png")
        conversation = [
            {"role": "user", "content": "<image>\nWhat colour is the square?"},
            {"role": "assistant", "content": f"It is {colour}."},
        ]
        rows.append({"id": str(i), "images": [f"{i}.png"], "conversation": conversation})
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, release


def _vars(root):
    return [f"vars.model_dir={root / 'hf'}", f"vars.data={root / 'sft.jsonl'}", f"vars.image_root={root}"]


def test_finetune_recipe_checks(converted, capsys):
    root, _ = converted
    code = _run("train", "finetune", *_vars(root), "--check", "--out", root / "check-run")
    output = capsys.readouterr()
    assert code == 0, output.out + output.err
    assert "stage 0 sft: OK" in output.out
    assert not (root / "check-run").exists()


def test_short_finetune_run_exports_a_model_that_converts_back_to_the_release(converted):
    root, release = converted
    torch.set_num_threads(1)
    overrides = ["stages.0.budget.steps=2", "data.max_tokens=1024", "data.num_workers=0",
                 "parallel.activation_checkpointing=false", "stages.0.lr=1e-3"]  # fmt: skip
    assert _run("train", "finetune", *_vars(root), *overrides, "--out", root / "run") == 0
    export = root / "run" / "sft" / "export"
    model = load_model(export)
    processor = SailVLProcessor.from_pretrained(export)
    assert (processor.template, processor.max_tiles, processor.image_token_id) == ("univl-chat", 10, 9)
    assert model.config.image_token_id == 9
    trained = load_file(root / "hf" / "model.safetensors")
    moved = load_file(export / "model.safetensors")
    name = next(k for k in trained if k.endswith("multi_modal_projector.linear_1.weight"))
    assert not torch.equal(trained[name], moved[name])  # the run trained

    assert _run("convert", export, root / "back", "--from", "hf", "--to", "sailvl-remote") == 0
    back = load_file(root / "back" / "model.safetensors")
    assert sorted(back) == sorted(release["weights"])  # the stored tied head included
    assert json.loads((root / "back" / "config.json").read_text()) == release["config"]


def test_finetune_with_lora_merges_adapters_into_the_llm(converted):
    """The recipe's commented LoRA variant: projector trained fully, adapters on the LLM's projections; the
    export is a plain model whose LLM projections moved (adapters merged) while its embeddings did not."""
    root, _ = converted
    torch.set_num_threads(1)
    lora = '{r: 4, alpha: 8, dropout: 0.0, targets: ["llm.*.self_attn.*_proj", "llm.*.mlp.*_proj"]}'
    overrides = ["stages.0.budget.steps=2", "data.max_tokens=1024", "data.num_workers=0", "stages.0.lr=1e-2",
                 "parallel.activation_checkpointing=false", 'stages.0.trainable=["projector.*"]',
                 f"stages.0.lora={lora}"]  # fmt: skip
    assert _run("train", "finetune", *_vars(root), *overrides, "--out", root / "lora-run") == 0
    export = root / "lora-run" / "sft" / "export"
    load_model(export)  # strict: a plain export, no adapter keys
    base = load_file(root / "hf" / "model.safetensors")
    merged = load_file(export / "model.safetensors")
    assert sorted(merged) == sorted(base)
    q_proj = next(k for k in base if k.endswith("layers.0.self_attn.q_proj.weight"))
    embed = next(k for k in base if k.endswith("embed_tokens.weight"))
    assert not torch.equal(base[q_proj], merged[q_proj])  # adapters merged
    assert torch.equal(base[embed], merged[embed])  # frozen base untouched
