"""A converted SAIL-VL2 renders, tiles and labels as the release does (univl-chat, 10 tiles + thumbnail).

The expected text comes from `_released_layouts.released_prompt`, written from the released conversation.py's
MPT rules (system always rendered, role + message + sep per turn, no newline between turns) and
modeling_sailvl.chat()'s image expansion; it never calls sailvl's renderer.
"""

import pytest
from _released_layouts import released_image_block, released_prompt, write_release
from PIL import Image

from sailvl.config.constants import IGNORE_INDEX, UNIVL_SYSTEM_PROMPT
from sailvl.data.processor import SailVLProcessor, write_processor_files
from sailvl.data.template import get_chat_format
from sailvl.errors import SailvlError
from sailvl.model import convert_checkpoint

TOKENS = 16  # 112 px tiles, patch 14, ratio 0.5


@pytest.fixture(scope="module")
def sailvl2_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sailvl2")
    write_release(root / "remote", "sail-vl2")
    convert_checkpoint(root / "remote", root / "hf", "sailvl-remote", "hf")
    write_processor_files(root / "hf")
    return root / "hf"


@pytest.fixture(scope="module")
def processor(sailvl2_dir):
    return SailVLProcessor.from_pretrained(sailvl2_dir)


def _text(processor, ids) -> str:
    return processor.tokenizer.decode(ids.flatten().tolist(), skip_special_tokens=False)


def test_prompt_with_an_image_is_byte_for_byte_the_released_one(processor):
    image = Image.new("RGB", (224, 112), "red")  # (2, 1) grid + thumbnail
    batch = processor.encode_prompt("What colour is the square?", [image])
    user = released_image_block(3, TOKENS) + "\nWhat colour is the square?"
    expected = released_prompt(UNIVL_SYSTEM_PROMPT, [("user", user), ("assistant", None)])
    assert _text(processor, batch["input_ids"]) == expected
    assert batch["num_tiles"] == [[3]]


def test_multi_turn_training_sample_and_its_labels(processor):
    conversation = [
        {"role": "user", "content": "<image>\nDescribe the image."},
        {"role": "assistant", "content": "A blue circle."},
        {"role": "user", "content": "What colour is the square?"},
        {"role": "assistant", "content": "It is red."},
    ]
    sample = processor.encode_sample(conversation, [Image.new("RGB", (112, 112), "blue")])
    expected = released_prompt(
        UNIVL_SYSTEM_PROMPT,
        [
            ("user", released_image_block(1, TOKENS) + "\nDescribe the image."),
            ("assistant", "A blue circle."),
            ("user", "What colour is the square?"),
            ("assistant", "It is red."),
        ],
    )
    assert _text(processor, sample.input_ids) == expected
    labelled = [
        i
        for i, label in zip(sample.input_ids.tolist(), sample.labels.tolist(), strict=True)
        if label != IGNORE_INDEX
    ]
    assert processor.tokenizer.decode(labelled) == "A blue circle.<|im_end|>It is red.<|im_end|>"


def test_two_images_a_given_system_turn_and_an_empty_one(processor, sailvl2_dir):
    images = [Image.new("RGB", (112, 112), c) for c in ("red", "blue")]
    conversation = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Which is red?"},
    ]
    batch = processor.encode_prompt(conversation, images)
    block = released_image_block(1, TOKENS)
    user = f"Image-1: {block}\nImage-2: {block}\nWhich is red?"
    assert _text(processor, batch["input_ids"]) == released_prompt(
        "Answer briefly.", [("user", user), ("assistant", None)]
    )
    # The released template writes its system turn even when the message is empty.
    silent = SailVLProcessor.from_pretrained(sailvl2_dir, system_prompt="")
    batch = silent.encode_prompt("Hi", [])
    assert _text(silent, batch["input_ids"]) == released_prompt("", [("user", "Hi"), ("assistant", None)])


def test_no_qwen25_id_reaches_the_qwen3_tokenizer(processor):
    """In this Qwen3-like tokenizer id 5 is <think> (Qwen2.5's <IMG_CONTEXT> position); <IMG_CONTEXT> is 9."""
    think = processor.tokenizer.convert_tokens_to_ids("<think>")
    assert (think, processor.image_token_id) == (5, 9)
    batch = processor.encode_prompt("What colour is the square?", [Image.new("RGB", (224, 112))])
    ids = batch["input_ids"].flatten().tolist()
    assert think not in ids and ids.count(9) == 3 * TOKENS


def test_converted_sailvl2_tiles_up_to_ten_plus_the_thumbnail(processor):
    wide = Image.new("RGB", (1120, 112), "green")  # aspect 10:1: a (10, 1) grid, the most the release allows
    assert processor.count_tiles(*wide.size) == 11
    assert processor.tile_image(wide).shape[0] == 11
    wider = Image.new("RGB", (1344, 112), "green")  # 12:1 would need 12 tiles; capped at 10
    assert processor.count_tiles(*wider.size) == 11


def test_settings_survive_a_save_and_the_template_is_named(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = SailVLProcessor.from_pretrained(tmp_path)
    assert loaded.settings() == processor.settings()
    assert loaded.settings()["template"] == "univl-chat" and loaded.max_tiles == 10
    with pytest.raises(SailvlError, match="unknown chat template 'chatml'"):
        get_chat_format("chatml")


def test_use_msac_adds_the_second_pass_to_single_image_prompts_only(sailvl2_dir):
    msac = SailVLProcessor.from_pretrained(sailvl2_dir, use_msac=True)
    image = Image.new("RGB", (448, 112), "red")  # (4, 1) grid; MSAC adds a grid that does not divide it
    plain = SailVLProcessor.from_pretrained(sailvl2_dir).encode_prompt("Hi", [image])["num_tiles"]
    assert plain == [[5]]
    assert msac.encode_prompt("Hi", [image])["num_tiles"][0][0] > 5
    assert msac.encode_prompt("Hi", [image], msac=False)["num_tiles"] == plain
    assert msac.encode_prompt("Hi", [image, image])["num_tiles"] == [[5, 5]]  # the release: one image only
