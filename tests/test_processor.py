"""SailVLProcessor API (tiles, prompts, batching, save/load, InternVL config) and image loading."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sailvl.data.images import BadRecord, load_image
from sailvl.data.processor import PROCESSOR_FILE, SailVLProcessor
from sailvl.errors import SailvlError


def encoded(image: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def tiny_internvl_config(tokenizer, tile=112):
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": [tile, tile],
            "patch_size": [14, 14],
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 64,
            "vocab_size": len(tokenizer),
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
    )


# ---- images -------------------------------------------------------------------------------------------


def test_load_image_errors(tmp_path):
    cases = {
        "image_missing": tmp_path / "nope.png",
        "image_empty": tmp_path / "empty.png",
        "image_corrupt": tmp_path / "junk.jpg",
    }
    cases["image_empty"].write_bytes(b"")
    cases["image_corrupt"].write_bytes(b"not an image at all")
    for reason, path in cases.items():
        with pytest.raises(BadRecord) as err:
            load_image(path)
        assert err.value.reason == reason
        assert str(path) in str(err.value)
    truncated = encoded(Image.new("RGB", (64, 64), "red"), "JPEG")[:200]
    with pytest.raises(BadRecord) as err:
        load_image(truncated)
    assert err.value.reason == "image_corrupt"
    with pytest.raises(BadRecord) as err:
        load_image(b"")
    assert err.value.reason == "image_empty"


def test_load_image_modes_to_rgb():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> white background
    assert load_image(encoded(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert all(abs(v - 127) <= 1 for v in load_image(encoded(half, "PNG")).getpixel((0, 0)))
    la = Image.new("LA", (4, 4), (0, 255))
    assert load_image(encoded(la, "PNG")).getpixel((0, 0)) == (0, 0, 0)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 255] + [0] * 765)
    assert load_image(encoded(palette, "PNG")).getpixel((0, 0)) == (0, 0, 255)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    pixel = load_image(encoded(cmyk, "JPEG")).getpixel((2, 2))
    assert pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))  # 16-bit white
    loaded = load_image(encoded(deep, "PNG"))
    assert loaded.mode == "RGB" and loaded.getpixel((0, 0)) == (255, 255, 255)
    mid = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))
    assert load_image(encoded(mid, "PNG")).getpixel((0, 0)) == (128, 128, 128)


def test_load_image_exif_transpose(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)
    assert load_image(str(path)).size == (20, 40)


def test_load_image_draft_for_large_jpeg():
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    data = encoded(big, "JPEG", quality=90)
    assert load_image(data).size == (1600, 1200)
    small = load_image(data, max_side=200)
    assert small.size == (200, 150)  # 1/8 scale keeps the long side >= 200
    assert load_image(data, max_side=500).size == (800, 600)
    assert load_image(data, max_side=1000).size == (1600, 1200)  # not much larger: full decode
    png = load_image(encoded(big.resize((400, 300)), "PNG"), max_side=50)
    assert png.size == (400, 300)  # draft only applies to JPEG


# ---- processor ----------------------------------------------------------------------------------------


def test_num_image_tokens(tiny_processor, tiny_tokenizer):
    assert tiny_processor.num_image_tokens == 16
    assert SailVLProcessor(tiny_tokenizer).num_image_tokens == 256  # 448 px, patch 14, ratio 0.5
    with pytest.raises(ValueError):
        SailVLProcessor(tiny_tokenizer, tile_size=100, patch_size=14)


def test_tile_image_and_msac(tiny_processor):
    image = Image.new("RGB", (224, 224), "red")
    assert tiny_processor.tile_image(image).shape == (5, 3, 112, 112)
    assert tiny_processor.tile_image(image, max_tiles=1).shape == (1, 3, 112, 112)
    assert tiny_processor.tile_image(image, msac=True).shape == (8, 3, 112, 112)  # 4 + 3 + thumbnail


def test_count_tiles_matches_tile_image(tiny_processor):
    for width, height in [(112, 112), (448, 112), (90, 300), (1000, 700), (50, 50), (2000, 120)]:
        image = Image.new("RGB", (width, height))
        for limit in (1, 4, 12):
            assert tiny_processor.count_tiles(width, height, limit) == len(
                tiny_processor.tile_image(image, limit)
            )


def test_total_tile_budget_per_sample(tiny_tokenizer):
    processor = SailVLProcessor(tiny_tokenizer, tile_size=112, max_tiles=4, max_total_tiles=6)
    big = Image.new("RGB", (896, 224), "red")
    one = processor.encode_sample([{"role": "user", "content": "x"}], [big])
    assert one.num_tiles == [5]  # 4x1 + thumbnail
    three = processor.encode_sample([{"role": "user", "content": "x"}], [big] * 3)
    assert three.num_tiles == [3, 3, 3]  # each capped at 6 // 3 = 2 tiles: 2x1 + thumbnail


def test_encode_prompts_left_padding(tiny_processor):
    image = Image.new("RGB", (224, 112), "blue")
    single_a = tiny_processor.encode_prompt("What colour is the star?", [image])
    single_b = tiny_processor.encode_prompt("Hi", [])
    assert single_b["pixel_values"] is None
    batch = tiny_processor.encode_prompts(["What colour is the star?", "Hi"], [[image], []])
    length = batch["input_ids"].shape[1]
    assert length == single_a["input_ids"].shape[1]
    short = single_b["input_ids"].shape[1]
    assert torch.equal(batch["input_ids"][1, length - short :], single_b["input_ids"][0])
    assert (batch["input_ids"][1, : length - short] == tiny_processor.tokenizer.pad_token_id).all()
    assert batch["attention_mask"][1].tolist() == [0] * (length - short) + [1] * short
    assert batch["attention_mask"][0].all()
    assert torch.equal(batch["pixel_values"], single_a["pixel_values"])
    assert batch["num_tiles"] == [[3], []]


def test_for_model_reads_internvl_config(tiny_tokenizer):
    config = tiny_internvl_config(tiny_tokenizer)
    processor = SailVLProcessor.for_model(tiny_tokenizer, config, max_tiles=2)
    assert (processor.tile_size, processor.patch_size, processor.downsample_ratio) == (112, 14, 0.5)
    assert processor.max_tiles == 2 and processor.num_image_tokens == 16
    config.image_token_id = 3
    with pytest.raises(SailvlError):
        SailVLProcessor.for_model(tiny_tokenizer, config)


def test_save_and_load_round_trip(tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    processor = SailVLProcessor(tiny_tokenizer, tile_size=112, max_tiles=3, system_prompt="Be short.")
    processor.save_pretrained(tmp_path / "proc")
    assert json.loads((tmp_path / "proc" / PROCESSOR_FILE).read_text())["max_tiles"] == 3
    loaded = SailVLProcessor.from_pretrained(tmp_path / "proc")
    assert loaded.settings() == processor.settings()
    conversation = [{"role": "user", "content": "<image>\nColour?"}, {"role": "assistant", "content": "Red."}]
    image = Image.new("RGB", (300, 100), "red")
    a, b = processor.encode_sample(conversation, [image]), loaded.encode_sample(conversation, [image])
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.pixel_values, b.pixel_values)
    plain = AutoTokenizer.from_pretrained(tmp_path / "proc")
    rendered = plain.apply_chat_template(conversation, tokenize=False)
    assert rendered == "<|im_start|>user\n<image>\nColour?<|im_end|><|im_start|>assistant\nRed.<|im_end|>"


def test_load_from_plain_transformers_dir(tmp_path, tiny_tokenizer):
    config = tiny_internvl_config(tiny_tokenizer)
    config.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    loaded = SailVLProcessor.from_pretrained(tmp_path)
    assert (loaded.tile_size, loaded.num_image_tokens) == (112, 16)
    with pytest.raises(SailvlError):
        SailVLProcessor.from_pretrained(tmp_path / "missing")


def test_outputs_feed_transformers_internvl(tiny_processor, tiny_tokenizer):
    from transformers import InternVLForConditionalGeneration

    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(tiny_internvl_config(tiny_tokenizer)).eval()
    image = Image.new("RGB", (300, 120), "red")
    conversation = [
        {"role": "user", "content": "What colour?"},
        {"role": "assistant", "content": "It is red."},
    ]
    sample = tiny_processor.encode_sample(conversation, [image])
    out = model(
        input_ids=sample.input_ids[None], pixel_values=sample.pixel_values, labels=sample.labels[None]
    )
    assert torch.isfinite(out.loss)
    batch = tiny_processor.encode_prompts(["What colour?", "Hi"], [[image], []])
    generated = model.generate(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
        max_new_tokens=2,
        do_sample=False,
    )
    assert generated.shape == (2, batch["input_ids"].shape[1] + 2)
