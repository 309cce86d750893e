"""CLI: `sailvl model info`, `sailvl convert`, `sailvl chat` (acceptance vs transformers) and bad input."""

import json

import pytest
import torch
from _model_helpers import save_test_image

from sailvl.cli import main


def _run(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def plain_model_dir(tmp_path_factory):
    """A tiny InternVLForConditionalGeneration saved by plain transformers, with a locally trained tokenizer."""
    from conftest import tiny_corpus
    from transformers import InternVLForConditionalGeneration

    from sailvl.data.tokenizer import train_bpe_tokenizer
    from sailvl.model import get_preset_config

    tokenizer = train_bpe_tokenizer(tiny_corpus(), vocab_size=512)
    config = get_preset_config(
        "tiny", vocab_size=len(tokenizer), image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("plain")
    InternVLForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_model_info_json_for_presets(capsys):
    code, out, _ = _run(capsys, "model", "info", "sailvl-2b", "--json")
    assert code == 0
    info = json.loads(out)
    assert set(info) == {"vision", "projector", "llm", "total", "image_tokens_per_tile", "tile_size"}
    assert info["vision"] == pytest.approx(304.0e6, rel=0.005)
    assert info["projector"] == pytest.approx(8.66e6, rel=0.005)
    assert info["llm"] == pytest.approx(1.543e9, rel=0.005)
    assert (info["image_tokens_per_tile"], info["tile_size"]) == (256, 448)


def test_model_info_reads_a_model_directory(capsys, plain_model_dir):
    code, out, _ = _run(capsys, "model", "info", plain_model_dir, "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["image_tokens_per_tile"], info["tile_size"]) == (16, 112)
    assert info["total"] == info["vision"] + info["projector"] + info["llm"]


def test_chat_gives_the_same_greedy_tokens_as_transformers_generate(capsys, tmp_path, plain_model_dir):
    from transformers import InternVLForConditionalGeneration

    from sailvl.data.images import load_image
    from sailvl.data.processor import SailVLProcessor

    image = save_test_image(tmp_path / "img.png")
    question = "What colour is the square?"
    code, out, err = _run(
        capsys,
        "chat",
        "--model",
        plain_model_dir,
        "--image",
        image,
        "--max-new-tokens",
        10,
        "--max-tiles",
        2,
        question,
    )
    assert code == 0, err

    model = InternVLForConditionalGeneration.from_pretrained(plain_model_dir).eval()
    processor = SailVLProcessor.from_pretrained(plain_model_dir)
    batch = processor.encode_prompt(question, [load_image(str(image))], max_tiles=2)
    with torch.no_grad():
        tokens = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            max_new_tokens=10,
            do_sample=False,
            eos_token_id=processor.tokenizer.eos_token_id,
        )[0, batch["input_ids"].shape[1] :]
    expected = processor.tokenizer.decode(tokens, skip_special_tokens=True)
    assert expected and out == expected + "\n"


def test_convert_command_writes_remote_layout(capsys, tmp_path, plain_model_dir):
    code, out, err = _run(
        capsys, "convert", plain_model_dir, tmp_path / "remote", "--from", "hf", "--to", "sailvl-remote"
    )
    assert code == 0, err
    config = json.loads((tmp_path / "remote" / "config.json").read_text())
    assert config["model_type"] == "internvl_chat"
    assert (tmp_path / "remote" / "tokenizer.json").is_file()


def _assert_one_line_error(code, err, fragment):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err


def test_bad_input_gives_one_line_and_exit_2(capsys, tmp_path, plain_model_dir):
    image = save_test_image(tmp_path / "ok.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    _assert_one_line_error(*_run(capsys, "model", "info", "sailvl-3b")[::2], "known presets")
    _assert_one_line_error(*_run(capsys, "chat", "--model", tmp_path / "nope", "hi")[::2], "does not exist")
    missing = _run(capsys, "chat", "--model", plain_model_dir, "--image", tmp_path / "missing.png", "hi")
    _assert_one_line_error(missing[0], missing[2], "missing.png")
    bad = _run(capsys, "chat", "--model", plain_model_dir, "--image", corrupt, "hi")
    _assert_one_line_error(bad[0], bad[2], "corrupt")
    mismatch = _run(capsys, "chat", "--model", plain_model_dir, "--image", image, "<image> vs <image>?")
    _assert_one_line_error(mismatch[0], mismatch[2], "placeholders")
    wrong = _run(capsys, "convert", plain_model_dir, tmp_path / "x", "--from", "hf", "--to", "gguf")
    _assert_one_line_error(wrong[0], wrong[2], "not a checkpoint format")


def test_model_info_names_a_release_family_tower_llm_template_and_tiling(capsys, tmp_path):
    from _released_layouts import write_release

    write_release(tmp_path / "remote", "sail-vl2")
    code, out, _ = _run(capsys, "model", "info", tmp_path / "remote", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["family"].startswith("sail-vl2") and info["vision_tower"].startswith("sailvit (SAILViTModel)")
    assert info["language_model"].startswith("qwen3")
    assert (info["template"], info["min_tiles"], info["max_tiles"], info["use_msac"]) == (
        "univl-chat",
        1,
        10,
        False,
    )
    assert info["image_token_id"] == 9  # from the tokenizer, not a Qwen2.5 constant
    code, out, _ = _run(
        capsys, "convert", tmp_path / "remote", tmp_path / "hf", "--from", "sailvl-remote", "--to", "hf"
    )
    assert code == 0 and "processor files" in out
    code, out, _ = _run(capsys, "model", "info", tmp_path / "hf", "--json")
    converted = json.loads(out)
    assert converted == info  # the same description before and after conversion


def test_convert_back_writes_the_processor_tile_settings(capsys, tmp_path):
    from _released_layouts import write_release

    write_release(tmp_path / "remote", "sail-vl2")
    assert _run(capsys, "convert", tmp_path / "remote", tmp_path / "hf")[0] == 0
    settings_file = tmp_path / "hf" / "sailvl_processor.json"
    settings = json.loads(settings_file.read_text())
    settings_file.write_text(json.dumps(settings | {"max_tiles": 6, "use_msac": True}))
    code, _, _ = _run(
        capsys, "convert", tmp_path / "hf", tmp_path / "back", "--from", "hf", "--to", "sailvl-remote"
    )
    assert code == 0
    image = json.loads((tmp_path / "back" / "preprocessor_config.json").read_text())
    assert (image["max_dynamic_patch"], image["use_msac"]) == (6, True)
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    assert (
        config["template"] == "univl-chat" and config["max_dynamic_patch"] == 12
    )  # config.json kept as released
