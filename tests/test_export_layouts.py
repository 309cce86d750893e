"""Exports of InternViT and AIMv2 models: what plain transformers loads or refuses, export-vit from both."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _model_helpers import save_causal_lm, save_vision_model, tiny_aimv2_config
from PIL import Image

from sailvl.errors import SailvlError

# The module's training runs and plain-transformers subprocess take ~25 s on 2 cores.
pytestmark = pytest.mark.slow

PRESETS = ("tiny", "tiny-aimv2")
STEPS = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per preset: 2-step tiny-sailvit stages from a random model dir -> (last export, its DCP checkpoint)."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import build_model, save_model
    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import train_tokenizer, world_texts
    from sailvl.train import load_recipe
    from sailvl.train.trainer import train_recipe

    root = tmp_path_factory.mktemp("export_layouts")
    world = root / "world"
    generate_world(world, 24, 0, n_bench=4)
    tokenizer = train_tokenizer(world_texts(world), vocab_size=512)
    out = {}
    for preset in PRESETS:
        if preset == "tiny-aimv2":
            # As a new user: AIMv2 + Qwen2 parts through `model.vision` / `model.llm`, all three SAILViT stages
            # (stages II and III start from the previous stage's export).
            source = [
                "model.path=null",
                f"model.vision={save_vision_model(root / 'aimv2', tiny_aimv2_config())}",
                f"model.llm={save_causal_lm(root / 'qwen2', tokenizer)}",
            ]
            stages = range(3)
        else:
            model = build_model(preset, seed=0, tokenizer=tokenizer)
            model_dir = save_model(model, root / preset / "model")
            SailVLProcessor.for_model(tokenizer, model.config, max_tiles=4).save_pretrained(model_dir)
            source, stages = [f"vars.model_dir={model_dir}"], range(1)
        overrides = [f"stages.{i}.{key}={STEPS}" for i in stages for key in ("budget.steps", "save_every")]
        recipe = load_recipe("tiny-sailvit", [f"vars.world={world}", *source, *overrides])
        exports = train_recipe(
            recipe, root / preset / "run", stage=None if len(stages) == 3 else "warmup-adaptation"
        )
        assert len(exports) == len(stages)
        export = exports[-1]
        ckpt = export.parent / "checkpoints" / f"step-{STEPS:07d}"
        assert ckpt.is_dir(), sorted(p.name for p in export.parent.rglob("*"))
        out[preset] = (export, ckpt)
    return out


def _cli(*args) -> None:
    from sailvl.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code


def _inputs(model) -> dict:
    gen = torch.Generator().manual_seed(0)
    ids = [1, 7, 9] + [model.config.image_token_id] * 16 + [11, 12, 2]
    return {"input_ids": torch.tensor([ids]), "pixel_values": torch.randn(1, 3, 112, 112, generator=gen)}


# Runs in a fresh interpreter that never imports sailvl: what a user with plain transformers sees.
_PLAIN = textwrap.dedent(
    """
    import json, sys, torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
    internvit, aimv2, inputs_file, out_file = sys.argv[1:]
    model, info = AutoModelForImageTextToText.from_pretrained(internvit, output_loading_info=True)
    inputs = torch.load(inputs_file)
    with torch.no_grad():
        logits = model.eval()(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
    tok = AutoTokenizer.from_pretrained(internvit)
    pixels = AutoImageProcessor.from_pretrained(internvit)(images=[Image.open(inputs["image"])],
                                                           return_tensors="pt")["pixel_values"]
    try:
        AutoModelForImageTextToText.from_pretrained(aimv2)
        refused = ""
    except (ValueError, KeyError) as err:
        refused = str(err)
    torch.save({"logits": logits, "pixels": pixels}, out_file)
    print(json.dumps({
        "class": type(model).__name__,
        "problems": {k: [str(x) for x in v] for k, v in info.items() if v},
        "tokens": [tok.start_image_token_id, tok.context_image_token_id, tok.end_image_token_id, len(tok)],
        "chat_template": tok.chat_template,
        "refused": refused,
        "sailvl_imported": any(m.startswith("sailvl") for m in sys.modules),
    }))
    """
)


def test_plain_transformers_loads_the_internvit_export_and_refuses_the_aimv2_one(runs, tmp_path):
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model

    internvit, aimv2 = runs["tiny"][0], runs["tiny-aimv2"][0]
    assert json.loads((internvit / "config.json").read_text())["model_type"] == "internvl"
    assert json.loads((aimv2 / "config.json").read_text())["model_type"] == "sailvl_internvl"
    model = load_model(internvit)
    image = tmp_path / "image.png"
    Image.effect_noise((230, 100), 60).convert("RGB").save(image)
    inputs = _inputs(model) | {"image": str(image)}
    torch.save(inputs, tmp_path / "inputs.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _PLAIN,
            str(internvit),
            str(aimv2),
            str(tmp_path / "inputs.pt"),
            str(tmp_path / "o.pt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"] == "InternVLForConditionalGeneration" and not report["problems"]
    assert not report["sailvl_imported"]
    assert "sailvl_internvl" in report["refused"]
    plain = torch.load(tmp_path / "o.pt")
    with torch.no_grad():
        assert torch.equal(plain["logits"], model(**_inputs(model)).logits)
    processor = SailVLProcessor.from_pretrained(internvit)
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in ("<img>", "<IMG_CONTEXT>", "</img>")]
    assert report["tokens"] == [*ids, len(tok)]  # no token added for InternVLProcessor's names
    assert report["chat_template"] == processor.chat_template
    # GotOcr2ImageProcessor tiles exactly as sailvl does: same grid, thumbnail, bicubic, normalisation.
    assert torch.equal(plain["pixels"], processor.tile_image(Image.open(image)))
    hf_processor = json.loads((internvit / "processor_config.json").read_text())
    assert hf_processor["image_seq_length"] == processor.num_image_tokens == 16


@pytest.mark.parametrize("preset", PRESETS)
def test_export_reloads_and_export_vit_works_from_export_and_dcp(runs, tmp_path, preset):
    from transformers import AutoModel

    from sailvl.model import load_model
    from sailvl.train.export import export_vit

    export, ckpt = runs[preset]
    model = load_model(export)
    expected_type = "aimv2_vision_model" if preset == "tiny-aimv2" else "internvl_vision"
    assert model.config.vision_config.model_type == expected_type
    tower_state = model.model.vision_tower.state_dict()
    for source in (export, ckpt):
        vit_dir = tmp_path / source.name
        if source == ckpt:  # through the CLI, as a user runs it on a training checkpoint
            _cli("export-vit", source, vit_dir)
        else:
            export_vit(source, vit_dir)
        tower = AutoModel.from_pretrained(vit_dir)
        assert tower.config.model_type == expected_type
        assert tower_state.keys() == tower.state_dict().keys()
        for name, tensor in tower.state_dict().items():
            assert torch.equal(tensor, tower_state[name]), (source.name, name)
    with torch.no_grad():
        logits = model(**_inputs(model)).logits
    assert torch.isfinite(logits).all()


def test_model_info_and_convert_accept_the_sailvl_layout(runs, tmp_path):
    from sailvl.model import convert_checkpoint, load_model
    from sailvl.model.info import model_info

    export = runs["tiny-aimv2"][0]
    assert model_info(str(export))["tile_size"] == 112
    remote = convert_checkpoint(export, tmp_path / "remote", "hf", "sailvl-remote")
    assert json.loads((remote / "config.json").read_text())["vision_config"]["model_type"] == "aimv2"
    back = convert_checkpoint(remote, tmp_path / "back", "sailvl-remote", "hf")
    assert json.loads((back / "config.json").read_text())["model_type"] == "sailvl_internvl"
    a, b = load_model(export), load_model(back)
    with torch.no_grad():
        assert torch.equal(a(**_inputs(a)).logits, b(**_inputs(b)).logits)
    with pytest.raises(SailvlError, match="already in the hf layout"):
        convert_checkpoint(export, tmp_path / "again", "sailvl-remote", "hf")


def test_bad_checkpoints_are_one_clear_error(runs, tmp_path):
    import shutil

    from sailvl.train.export import export_vit

    with pytest.raises(SailvlError, match="does not exist"):
        export_vit(Path(tmp_path / "nope"), tmp_path / "vit")
    # A DCP checkpoint whose config.json describes another tower (what InternVLConfig.from_json_file made of it).
    ckpt = shutil.copytree(runs["tiny-aimv2"][1], tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    config["vision_config"]["model_type"] = "internvl_vision"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(SailvlError, match="does not match its config.json"):
        export_vit(ckpt, tmp_path / "vit")


def test_convert_of_a_released_checkpoint_adds_the_processor_files(runs, tmp_path):
    from transformers import AutoImageProcessor

    from sailvl.data.processor import SailVLProcessor

    remote = tmp_path / "remote"
    _cli("convert", runs["tiny"][0], remote, "--from", "hf", "--to", "sailvl-remote")
    for name in ("preprocessor_config.json", "processor_config.json", "sailvl_processor.json"):
        (remote / name).unlink()  # a release ships the tokenizer only
    _cli("convert", remote, tmp_path / "hf", "--from", "sailvl-remote", "--to", "hf")
    image = AutoImageProcessor.from_pretrained(tmp_path / "hf")
    # The export's processor tiles up to 4: `convert --to sailvl-remote` writes that as max_dynamic_patch.
    assert (image.size["height"], image.max_patches) == (112, 4)
    assert SailVLProcessor.from_pretrained(tmp_path / "hf").num_image_tokens == 16


def test_a_whole_aimv2_export_moves_onto_a_new_llm(runs, tmp_path):
    # ViT transfer straight from a SAILViT export (model_type sailvl_internvl, which AutoConfig does not know).
    from sailvl.model import build_from_parts, load_model
    from sailvl.synth.tiny_model import train_tokenizer

    export, _ = runs["tiny-aimv2"]
    tokenizer = train_tokenizer(["a red circle", "a blue square"] * 8, vocab_size=300)
    llm_dir = save_causal_lm(tmp_path / "new_llm", tokenizer, seed=3)
    model, _ = build_from_parts(export, llm_dir, seed=0)
    assert model.config.vision_config.model_type == "aimv2_vision_model"
    source = load_model(export).model.vision_tower.state_dict()
    moved = model.model.vision_tower.state_dict()
    assert source.keys() == moved.keys()
    assert all(torch.equal(moved[name], tensor) for name, tensor in source.items())
