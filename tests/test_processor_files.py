"""Processor files for transformers' InternVLProcessor: written by save_pretrained, read back by from_pretrained."""

import json

import pytest

from sailvl.data import template
from sailvl.data.processor import SailVLProcessor
from sailvl.data.processor_files import hf_chat_template
from sailvl.errors import SailvlError
from sailvl.model import get_preset_config


def test_saved_processor_files_describe_the_same_tiling_for_transformers(tmp_path, tiny_processor):
    tiny_processor.save_pretrained(tmp_path)
    image = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert image["image_processor_type"] == "GotOcr2ImageProcessor"
    assert image["size"] == {"height": 112, "width": 112} and image["crop_to_patches"] is True
    assert (image["min_patches"], image["max_patches"]) == (1, 4)
    processor = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor["image_seq_length"] == 16
    assert processor["chat_template"] == hf_chat_template(tiny_processor.system_prompt)
    tokenizer = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer["context_image_token"] == "<IMG_CONTEXT>" and tokenizer["start_image_token"] == "<img>"
    assert tokenizer["video_token"] in tiny_processor.tokenizer.get_vocab()  # no token is added for it
    # sailvl_processor.json wins when present.
    assert SailVLProcessor.from_pretrained(tmp_path).settings() == tiny_processor.settings()


def test_plain_transformers_dir_takes_its_tile_range_from_preprocessor_config(tmp_path, tiny_tokenizer):
    get_preset_config("tiny", vocab_size=len(tiny_tokenizer), image_token_id=5).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    image = {"crop_to_patches": True, "min_patches": 2, "max_patches": 6, "image_mean": [0.485, 0.456, 0.406]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(image))
    loaded = SailVLProcessor.from_pretrained(tmp_path)
    assert (loaded.tile_size, loaded.min_tiles, loaded.max_tiles) == (112, 2, 6)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(image | {"crop_to_patches": False}))
    assert SailVLProcessor.from_pretrained(tmp_path).max_tiles == 1
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(image | {"image_mean": [0.5, 0.5, 0.5]}))
    with pytest.raises(SailvlError, match="image_mean"):
        SailVLProcessor.from_pretrained(tmp_path)


def _items(content: str) -> list[dict]:
    """OpenAI-style items for a sailvl content string: `<image>\\n` becomes an image item."""
    items = [{"type": "image"} for _ in range(content.count("<image>\n"))]
    return items + [{"type": "text", "text": content.replace("<image>\n", "")}]


@pytest.mark.parametrize("system_prompt", ["You are a helpful assistant.", None, 'Say "{hi}".'])
@pytest.mark.parametrize("num_images", [0, 1, 2])
def test_hf_chat_template_renders_what_sailvl_renders(tiny_tokenizer, system_prompt, num_images):
    conversation = [
        {"role": "user", "content": "<image>\n" * num_images + "What colour?"},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "And the shape?"},
    ]
    ours = template.prepare_conversation([dict(t) for t in conversation], num_images, system_prompt)
    expected = tiny_tokenizer.apply_chat_template(ours, tokenize=False, add_generation_prompt=True)
    served = [{"role": t["role"], "content": _items(t["content"])} for t in conversation]
    rendered = tiny_tokenizer.apply_chat_template(
        served, chat_template=hf_chat_template(system_prompt), tokenize=False, add_generation_prompt=True
    )
    assert rendered == expected.replace("<image>", "<IMG_CONTEXT>")
    as_strings = tiny_tokenizer.apply_chat_template(
        ours, chat_template=hf_chat_template(system_prompt), tokenize=False, add_generation_prompt=True
    )
    assert as_strings == expected.replace("<image>", "<IMG_CONTEXT>")
