"""Rank-balanced packs (`balance_packs`), the bench's imbalance report, and the realistic bench mix."""

import random

import torch
from PIL import Image

from sailvl.data.packing import PackItem, balance_packs, pack_cost


def _item(draw: int, length: int, tiles: int) -> PackItem:
    empty = torch.empty(0)
    return PackItem(draw, f"s{draw}", torch.zeros(length, dtype=torch.long), empty, empty, tiles)


def test_balance_packs_spreads_tiles_and_respects_limits():
    # Dealt as they come, rank 0 gets every many-tile sample; balanced, no rank is far above the mean.
    items = [_item(i, 1000 - i, 12 if i < 4 else 1) for i in range(16)]
    dealt = [items[4 * r : 4 * r + 4] for r in range(4)]
    packs = balance_packs(dealt, max_tokens=4096, max_tiles=48, token_cost=1.0, tile_cost=250)
    assert sorted(it.draw for p in packs for it in p) == list(range(16))
    costs = [pack_cost(p, 1.0, 250) for p in packs]
    before = [pack_cost(p, 1.0, 250) for p in dealt]
    assert max(costs) / (sum(costs) / 4) < 1.01 < max(before) / (sum(before) / 4)
    for pack in packs:
        assert sum(it.length for it in pack) <= 4096 and sum(it.num_tiles for it in pack) <= 48
        assert [it.draw for it in pack] == sorted(it.draw for it in pack)


def test_balance_packs_keeps_full_packs_within_limits():
    # Token-full packs: only swaps fit, and the tile limit must hold after each.
    dealt = [[_item(0, 2000, 8), _item(1, 2000, 8)], [_item(2, 2000, 0), _item(3, 2000, 0)]]
    packs = balance_packs(dealt, max_tokens=4000, max_tiles=16, token_cost=1.0, tile_cost=100)
    assert sorted(sum(it.num_tiles for it in p) for p in packs) == [8, 8]
    # A tile limit that no move or swap can meet leaves the packs as they were.
    tight = balance_packs(dealt, max_tokens=4000, max_tiles=7, token_cost=1.0, tile_cost=100)
    assert [[it.draw for it in p] for p in tight] == [[0, 1], [2, 3]]


def test_rank_balance_report_from_rows():
    from sailvl.bench.balance import rank_balance

    rng = random.Random(0)
    rows = [[(rng.randint(200, 900), rng.choice([1, 5, 13])) for _ in range(5)] for _ in range(16)]
    report = rank_balance(rows, ranks=4, max_tokens=4096, max_tiles=40, tile_cost=250.0)
    assert report["steps"] == 4 and report["dealt_imbalance"] >= report["balanced_imbalance"] >= 1.0
    assert "error" in rank_balance(rows[:3], ranks=4, max_tokens=4096, max_tiles=40, tile_cost=1.0)


def test_tile_cost_is_vit_flops_in_llm_tokens():
    from sailvl.bench.balance import tile_cost_in_tokens

    # InternViT-300M over 1025 tokens vs Qwen2.5-1.5B per token: a tile costs a few hundred LLM tokens.
    assert 150 < tile_cost_in_tokens("sailvl-2b") < 400


def test_realistic_mix_has_photo_sized_jpegs_and_many_tile_counts(tmp_path):
    from sailvl.bench.mix import realistic_processor, write_realistic_mix
    from sailvl.data.images import load_image

    config = write_realistic_mix(tmp_path, n=40, n_images=12, seed=1)
    assert config.max_tokens == 8192 and len(config.sources) == 1
    processor = realistic_processor()
    assert processor.tile_size == 448 and processor.max_tiles == 12
    tiles = set()
    for path in sorted((tmp_path / "images").glob("*.jpg")):
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) >= 800
        image = load_image(path.read_bytes(), max_side=448 * 12)
        tiles.add(processor.tile_image(image, 12).shape[0])
    assert len(tiles) >= 3 and max(tiles) <= 13
