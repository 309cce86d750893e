"""Conversion parity per released family, against checkpoints built here without sailvl's writer.

`_released_layouts` writes tiny checkpoints named and configured as each family ships them (SAIL-VL InternViT +
Qwen2.5, SAIL-VL 1.5/1.6 AIMv2 + Qwen2.5, SAIL-VL2 SAILViT + Qwen3 with a stored tied head) and runs a plain
PyTorch forward of the released model (tower, pixel shuffle v2, mlp1, LLM). `sailvl convert` + sailvl's model
must give the same logits (fp32, 1e-5), and released -> hf -> released must give back the same files.
"""

import json

import pytest
import torch
from _released_layouts import PATCH, TILE, reference_logits, write_release
from safetensors.torch import load_file

from sailvl.config.constants import RELEASE_FILE, RELEASE_KEY
from sailvl.data.processor import SailVLProcessor, write_processor_files
from sailvl.data.processor_files import release_tile_settings
from sailvl.errors import SailvlError
from sailvl.model import convert_checkpoint, load_model

FAMILIES = ["sail-vl", "sail-vl-1.5", "sail-vl2"]


def _convert_in(tmp_path, family, **overrides):
    release = write_release(tmp_path / "remote", family, **overrides)
    convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")
    write_processor_files(tmp_path / "hf")  # what `sailvl convert` adds after the weights
    return release


def _inputs(release, n_tiles=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    context = release["tokenizer"].convert_tokens_to_ids("<IMG_CONTEXT>")
    tokens = (TILE // PATCH) ** 2 // 4
    ids = torch.tensor([[1, 30, 31] + [context] * (tokens * n_tiles) + [40, 41, 2]])
    return ids, torch.randn(n_tiles, 3, TILE, TILE, generator=gen)


@pytest.mark.parametrize(
    ("family", "overrides"),
    [("sail-vl", {}), ("sail-vl", {"select_layer": -2}), ("sail-vl-1.5", {}), ("sail-vl2", {})],
)
def test_converted_release_matches_the_reference_forward(tmp_path, family, overrides):
    release = _convert_in(tmp_path, family, **overrides)
    model = load_model(tmp_path / "hf")
    assert model.config.image_token_id == release["tokenizer"].convert_tokens_to_ids("<IMG_CONTEXT>")
    input_ids, pixels = _inputs(release)
    with torch.no_grad():
        ours = model(input_ids=input_ids, pixel_values=pixels).logits
        reference = reference_logits(release, input_ids, pixels)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)  # measured max |diff| < 1e-6
    with torch.no_grad():  # the image positions carry signal: a different image moves the logits
        other = model(input_ids=input_ids, pixel_values=pixels.flip(0)).logits
    assert (other - ours).abs().max() > 1e-3


def _round_trip(tmp_path):
    tiles = release_tile_settings(tmp_path / "hf")
    convert_checkpoint(tmp_path / "hf", tmp_path / "back", "hf", "sailvl-remote", tiles=tiles)
    return load_file(tmp_path / "back" / "model.safetensors"), json.loads(
        (tmp_path / "back/config.json").read_text()
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_released_hf_released_round_trip_is_exact(tmp_path, family):
    release = _convert_in(tmp_path, family)
    back, config = _round_trip(tmp_path)
    assert sorted(back) == sorted(release["weights"])
    for name, tensor in release["weights"].items():
        assert torch.equal(back[name], tensor), name
    assert config == release["config"]
    remote_files = sorted(p.name for p in (tmp_path / "remote").iterdir() if p.suffix != ".py")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == remote_files
    for name in ("tokenizer_config.json", "preprocessor_config.json"):
        if (tmp_path / "remote" / name).is_file():
            assert (tmp_path / "back" / name).read_text() == (tmp_path / "remote" / name).read_text(), name


@pytest.mark.parametrize("family", FAMILIES)
def test_without_the_release_record_the_family_layout_is_written(tmp_path, family):
    """A model that lost the release record (RELEASE_KEY, RELEASE_FILE): the family's own class names, template
    and weight names (the tied head included for SAIL-VL2) are written."""
    release = _convert_in(tmp_path, family)
    (tmp_path / "hf" / RELEASE_FILE).unlink()
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    del hf_config[RELEASE_KEY]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(hf_config))
    back, config = _round_trip(tmp_path)
    assert sorted(back) == sorted(release["weights"])
    expected = release["config"]
    for key in ("architectures", "auto_map", "model_type", "template", "ps_version", "select_layer"):
        assert config[key] == expected[key], key
    assert config["vision_config"]["model_type"] == expected["vision_config"]["model_type"]
    assert config["llm_config"]["architectures"] == expected["llm_config"]["architectures"]
    # The releases' transformers 4.x reads rope_theta (default 10000 when absent), not rope_parameters.
    assert config["llm_config"]["rope_theta"] == expected["llm_config"]["rope_theta"] == 1e6


def test_sailvl2_keeps_its_tiling_template_and_image_token(tmp_path):
    release = _convert_in(tmp_path, "sail-vl2")
    processor = SailVLProcessor.from_pretrained(tmp_path / "hf")
    # preprocessor_config.json's max_dynamic_patch (10) wins over config.json's 12, as in the released processor.
    assert (processor.min_tiles, processor.max_tiles, processor.use_thumbnail) == (1, 10, True)
    assert processor.template == "univl-chat" and processor.system_prompt.startswith("你是由抖音内容理解组")
    tokenizer = release["tokenizer"]
    assert processor.image_token_id == tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>") == 9
    assert tokenizer.convert_ids_to_tokens(5) == "<think>"  # where a Qwen2.5 <IMG_CONTEXT> id would point


def test_a_config_image_id_that_disagrees_with_the_tokenizer_is_refused(tmp_path):
    write_release(tmp_path / "remote", "sail-vl2")
    config = json.loads((tmp_path / "remote/config.json").read_text())
    config["img_context_token_id"] = 5  # the Qwen2.5 position: <think> in this tokenizer
    (tmp_path / "remote/config.json").write_text(json.dumps(config))
    with pytest.raises(
        SailvlError, match="img_context_token_id 5 is not the tokenizer's <IMG_CONTEXT> \\(9\\)"
    ):
        convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["vision_config"].update(model_type="siglip_vision_model"),
            "'siglip_vision_model' is not",
        ),
        (lambda c: c["llm_config"].update(model_type="llama"), "llm_config.model_type 'llama'"),
        (lambda c: c.update(ps_version="v1"), "ps_version 'v1'"),
        (lambda c: c.update(template="internvl2_5"), "template 'internvl2_5'"),
        (lambda c: c.update(use_llm_lora=8), "use_llm_lora=8"),
        (
            lambda c: c.update(architectures=["LlavaForConditionalGeneration"]),
            "LlavaForConditionalGeneration",
        ),
    ],
)
def test_unknown_family_or_field_is_one_clear_error(tmp_path, change, message):
    write_release(tmp_path / "remote", "sail-vl2")
    config = json.loads((tmp_path / "remote/config.json").read_text())
    change(config)
    (tmp_path / "remote/config.json").write_text(json.dumps(config))
    with pytest.raises(SailvlError, match=message):
        convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")
    assert not (tmp_path / "hf").exists()


def test_unknown_weight_is_named(tmp_path):
    from safetensors.torch import save_file

    release = write_release(tmp_path / "remote", "sail-vl-1.5")
    weights = dict(release["weights"]) | {"vision_model.trunk.extra_head.weight": torch.zeros(2)}
    save_file(weights, str(tmp_path / "remote" / "model.safetensors"))
    with pytest.raises(SailvlError, match="vision_model.trunk.extra_head.weight"):
        convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")


def test_a_slow_tokenizers_added_tokens_json_gives_the_image_id(tmp_path):
    """Released tokenizers loaded with use_fast=False may only list added tokens in added_tokens.json."""
    release = write_release(tmp_path / "remote", "sail-vl2")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "remote" / name).unlink()
    (tmp_path / "remote" / "added_tokens.json").write_text(json.dumps({"<think>": 5, "<IMG_CONTEXT>": 9}))
    convert_checkpoint(tmp_path / "remote", tmp_path / "hf", "sailvl-remote", "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["image_token_id"] == release["tokenizer"].convert_tokens_to_ids("<IMG_CONTEXT>") == 9
