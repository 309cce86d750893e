"""Packing: exact per-token losses against samples run one by one, efficiency, truncation, collation."""

import random

import pytest
import torch
from _data_helpers import synthetic_samples, tiny_internvl

from sailvl.config.constants import IGNORE_INDEX, IMG_END, IMG_START
from sailvl.data.collate import block_causal_mask, collate_packs, collate_padded
from sailvl.data.images import load_image
from sailvl.data.packing import BestFitPacker, PackItem, fit_to_length


def _encode_items(processor, samples):
    items = []
    for draw, sample in enumerate(samples):
        enc = processor.encode_sample(sample.conversation, [load_image(b) for b in sample.images])
        items.append(
            PackItem(draw, sample.id, enc.input_ids, enc.labels, enc.pixel_values, sum(enc.num_tiles))
        )
    return items


def _token_losses(model, batch):
    """Per-token next-token losses [B, L-1] (0 where the label is ignored)."""
    mask = batch["attention_mask"]
    if batch.get("segment_ids") is not None:
        from sailvl.train.step import flex_block_mask

        mask = flex_block_mask(batch["segment_ids"], batch["input_ids"].device)
    out = model(
        input_ids=batch["input_ids"],
        pixel_values=batch["pixel_values"],
        attention_mask=mask,
        position_ids=batch["position_ids"],
    )
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return losses.view(labels.shape)


@pytest.mark.parametrize(
    ("attn", "mask_format"), [("sdpa", "bool"), ("eager", "additive"), ("flex_attention", "flex")]
)
def test_packed_losses_equal_one_by_one(tiny_tokenizer, tiny_processor, attn, mask_format):
    from sailvl.train.parallel import set_attention

    torch.set_num_threads(1)
    items = _encode_items(tiny_processor, synthetic_samples(10, seed=1))
    model = tiny_internvl(tiny_tokenizer)
    set_attention(model, attn)
    packer = BestFitPacker(max_tokens=512, max_tiles=64, buffer_size=100)
    packs = [p for it in items for p in packer.add(it)] + packer.flush()
    assert sum(len(p) for p in packs) == 10 and max(len(p) for p in packs) >= 4
    batch = collate_packs(packs, 512, tiny_tokenizer.pad_token_id, mask_format)
    assert batch["pixel_values"].shape[0] == sum(it.num_tiles for it in items)
    assert (batch["attention_mask"] is None) == (mask_format == "flex")
    with torch.no_grad():
        packed = _token_losses(model, batch)
        total_single, total_targets = 0.0, 0
        for r, pack in enumerate(packs):
            offset = 0
            for item in pack:
                single = _token_losses(model, collate_packs([[item]], item.length, 0, "none"))[0]
                torch.testing.assert_close(
                    packed[r, offset : offset + item.length - 1], single, atol=1e-5, rtol=0
                )
                total_single += float(single.sum())
                total_targets += int((item.labels[1:] != IGNORE_INDEX).sum())
                offset += item.length
    assert float(packed.sum()) == pytest.approx(total_single, rel=1e-6)
    assert batch["num_target_tokens"] == total_targets


def _fake_item(draw, length, tiles=0):
    ids = torch.arange(length) % 50
    return PackItem(draw, f"s{draw}", ids, ids.clone(), torch.zeros(tiles, 3, 2, 2), tiles)


def _steady_efficiency(lengths, max_tokens, buffer_size=128, tiles=None):
    packer = BestFitPacker(max_tokens, 64, buffer_size)
    packs = []
    for i, n in enumerate(lengths):
        packs += packer.add(_fake_item(i, n, 0 if tiles is None else tiles[i]))
    return sum(it.length for p in packs for it in p) / (len(packs) * max_tokens), packs


@pytest.mark.parametrize("mix", ["sft", "long_tailed"])
def test_packing_efficiency_at_least_98_percent(mix):
    rng = random.Random(0)
    if mix == "sft":
        lengths = [min(512, int(rng.lognormvariate(4.6, 0.6)) + 1) for _ in range(4000)]
    else:
        lengths = [min(512, int(16 * rng.paretovariate(1.2))) for _ in range(4000)]
    with pytest.raises(ValueError, match="does not fit"):
        BestFitPacker(512, 64, 8).add(_fake_item(0, 513))
    efficiency, packs = _steady_efficiency(lengths, 512)
    assert efficiency >= 0.98
    assert all(sum(it.length for it in p) <= 512 for p in packs)
    emitted = sorted(it.draw for p in packs for it in p)
    assert len(emitted) == len(set(emitted))


def test_tile_cap_per_pack_is_respected():
    rng = random.Random(1)
    tiles = [rng.choice([0, 1, 5, 13]) for _ in range(500)]
    lengths = [20 + 16 * t for t in tiles]
    _, packs = _steady_efficiency(lengths, 512, 32, tiles)
    assert packs and all(sum(it.num_tiles for it in p) <= 64 for p in packs)


def test_block_causal_mask_isolates_segments():
    segments = torch.tensor([[0, 0, 1, 1, 1, -1]])
    mask = block_causal_mask(segments)[0, 0]
    assert mask[1, 0] and not mask[0, 1]  # causal inside a sample
    assert not mask[2, 1] and mask[4, 2]  # nothing across samples
    assert mask[5, 5] and not mask[5, :5].any()  # padding sees only itself


def test_collate_packs_positions_restart_and_first_labels_ignored():
    packs = [[_fake_item(0, 5), _fake_item(1, 3)], [_fake_item(2, 4)]]
    batch = collate_packs(packs, 10, pad_token_id=99)
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 0]
    assert batch["labels"][0, 0] == IGNORE_INDEX and batch["labels"][0, 5] == IGNORE_INDEX
    assert batch["input_ids"][1, 4:].eq(99).all()
    assert batch["num_real_tokens"] == 12 and batch["sample_ids"] == ["s0", "s1", "s2"]
    assert batch["num_target_tokens"] == 12 - 3  # every token but each sample's first is a target here
    assert batch["attention_mask"].dtype == torch.bool and batch["attention_mask"].shape == (2, 1, 10, 10)
    assert collate_packs(packs, 10, 99, "none")["attention_mask"] is None
    padded = collate_padded([_fake_item(0, 5), _fake_item(1, 3)], 99)
    assert padded["input_ids"].shape == (2, 5) and padded["attention_mask"].sum() == 8


def test_truncation_never_splits_an_image_span(tiny_tokenizer, tiny_processor):
    image = synthetic_samples(3, seed=5)[2].images[0]
    conversation = [
        {"role": "user", "content": "<image>\nwhat is it"},
        {"role": "assistant", "content": "a red circle"},
        {"role": "user", "content": "<image>\nand this"},
        {"role": "assistant", "content": " ".join(["blue star"] * 40)},
    ]
    enc = tiny_processor.encode_sample(conversation, [load_image(image), load_image(image)])
    start_id = tiny_tokenizer.convert_tokens_to_ids(IMG_START)
    end_id = tiny_tokenizer.convert_tokens_to_ids(IMG_END)
    starts = (enc.input_ids == start_id).nonzero().flatten().tolist()
    ends = (enc.input_ids == end_id).nonzero().flatten().tolist()
    assert len(starts) == 2 and len(ends) == 2
    # A cut inside the second image span drops that whole image and its tiles, keeping the first answer.
    ids, labels, pixels, tiles = fit_to_length(
        enc.input_ids, enc.labels, enc.pixel_values, enc.num_tiles, starts[1] + 3, start_id, end_id
    )
    assert ids.numel() == starts[1] and tiles == enc.num_tiles[0] and pixels.shape[0] == enc.num_tiles[0]
    assert (labels != IGNORE_INDEX).any()
    # A cut in the last answer keeps both images whole.
    cut = enc.input_ids.numel() - 20
    ids, labels, pixels, tiles = fit_to_length(
        enc.input_ids, enc.labels, enc.pixel_values, enc.num_tiles, cut, start_id, end_id
    )
    assert ids.numel() == cut and tiles == sum(enc.num_tiles) and pixels.shape[0] == tiles
    # A cut inside the first image span leaves nothing trainable.
    assert (
        fit_to_length(
            enc.input_ids, enc.labels, enc.pixel_values, enc.num_tiles, starts[0] + 2, start_id, end_id
        )
        is None
    )
