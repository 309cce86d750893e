"""DPO objective: losses against TRL's, packing-aware per-sequence log-probs, preference records in the loader,
the adapters-off reference, and one step's loss and metrics."""

import json
import math
import random
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from _data_helpers import png_bytes, tiny_internvl

from sailvl.config.constants import IGNORE_INDEX
from sailvl.data.collate import collate_packs, collate_padded
from sailvl.data.packing import PackItem
from sailvl.data.preference import last_answer_labels, pair_item
from sailvl.train.dpo import DpoObjective, adapters_disabled, pair_losses, sequence_logps, sequence_targets
from sailvl.train.parallel import DistInfo
from sailvl.train.recipe import DpoSpec
from sailvl.train.step import find_targets, train_step


# -- losses against TRL 1.16 --------------------------------------------------------------------------------
def _trl_loss(
    per_token: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor, loss: str, beta: float
) -> float:
    """TRL's DPOTrainer._compute_loss on given per-token log-probs: `per_token` `[2K, L-1]` (chosen rows first,
    zero off the answer), `mask` `[2K, L]` the completion mask, `ref` `[2K]` the reference's summed log-probs."""
    from trl.trainer.dpo_trainer import DPOTrainer

    rows, length = mask.shape
    outputs = SimpleNamespace(
        log_probs=per_token,
        entropy=torch.zeros(rows, length - 1),
        mean_logits=torch.zeros(rows, length - 1),
        is_top1=torch.zeros(rows, length - 1, dtype=torch.bool),
    )
    model = SimpleNamespace(training=False)
    identity = SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x)
    trainer = SimpleNamespace(
        model=model, accelerator=identity, aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
        f_divergence_type="reverse_kl", loss_types=[loss], loss_weights=[1.0], beta=beta, label_smoothing=0.0,
        use_weighting=False, _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    inputs = {
        "input_ids": torch.zeros(rows, length, dtype=torch.long),
        "completion_mask": mask,
        "ref_chosen_logps": ref[: rows // 2],
        "ref_rejected_logps": ref[rows // 2 :],
    }
    return float(DPOTrainer._compute_loss(trainer, lambda **kw: outputs, inputs, False))


def _pairs(seed: int = 0, pairs: int = 3, length: int = 9):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(2 * pairs, length)
    for row in range(2 * pairs):  # answers of different lengths
        mask[row, length - 2 - (row % 4) :] = 1
    per_token = -torch.rand(2 * pairs, length - 1, generator=g) * 3 * mask[:, 1:]
    ref = per_token.sum(1) + torch.randn(2 * pairs, generator=g)
    return per_token, mask, ref


@pytest.mark.parametrize("loss", ["sigmoid", "ipo"])
def test_pair_losses_match_trl(loss):
    per_token, mask, ref = _pairs()
    spec = DpoSpec(beta=0.3, loss=loss)
    sums, tokens = per_token.sum(1), mask.sum(1)
    k = len(sums) // 2
    ours, _, _ = pair_losses(sums[:k], sums[k:], ref[:k], ref[k:], spec, tokens[:k], tokens[k:])
    assert float(ours.mean()) == pytest.approx(_trl_loss(per_token, mask, ref, loss, 0.3), abs=1e-6)


def test_label_smoothing_is_cdpo_over_trl_sigmoid():
    # TRL 1.16's sigmoid loss has no label smoothing (it moved to its `robust` / `aot` losses); cDPO is the
    # expected sigmoid loss when each label flips with probability eps: TRL's loss on the pairs and on the
    # swapped pairs, mixed (1 - eps) : eps.
    per_token, mask, ref = _pairs(1)
    k = len(ref) // 2
    swap = torch.cat([torch.arange(k, 2 * k), torch.arange(k)])
    eps, beta = 0.2, 0.5
    plain = _trl_loss(per_token, mask, ref, "sigmoid", beta)
    flipped = _trl_loss(per_token[swap], mask[swap], ref[swap], "sigmoid", beta)
    sums = per_token.sum(1)
    ours, _, _ = pair_losses(sums[:k], sums[k:], ref[:k], ref[k:], DpoSpec(beta=beta, label_smoothing=eps))
    assert float(ours.mean()) == pytest.approx((1 - eps) * plain + eps * flipped, abs=1e-6)
    assert abs(plain - flipped) > 0.1  # the mix is not trivially equal to either


# -- per-sequence log-probs of packed pairs -----------------------------------------------------------------
def _encode_pair(processor, seed: int, chosen: str, rejected: str) -> PackItem:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes(seed))).convert("RGB")
    items = []
    for answer in (chosen, rejected):
        conversation = [
            {"role": "user", "content": "<image>\nWhat colour is it?"},
            {"role": "assistant", "content": "It is"},
            {"role": "user", "content": "And the shape?"},
            {"role": "assistant", "content": answer},
        ]
        e = processor.encode_sample(conversation, [image], max_tiles=1)
        items.append(PackItem(seed, f"p{seed}", e.input_ids, last_answer_labels(e.labels), e.pixel_values, 1))
    return pair_item(*items)


def _logps(model, batch):
    targets = find_targets(batch["labels"])
    inputs = {k: batch[k] for k in ("input_ids", "labels", "position_ids", "attention_mask", "pixel_values")}
    with torch.no_grad():
        return sequence_logps(model, inputs, targets, sequence_targets(batch["sequence_ids"], targets))


def test_packed_pair_logps_equal_unpacked(tiny_processor, tiny_tokenizer):
    model = tiny_internvl(tiny_tokenizer)
    items = [
        _encode_pair(tiny_processor, 1, "a red circle on the left", "a blue square"),
        _encode_pair(tiny_processor, 2, "green", "a yellow star on the top"),
    ]
    pad = tiny_tokenizer.pad_token_id
    packed = collate_packs([items], 512, pad)  # both pairs in one row: four segments
    padded = collate_padded(items, pad)  # one sequence per row
    assert packed["sequence_ids"].max() == 3 and padded["input_ids"].shape[0] == 4
    logp_packed, nll_packed = _logps(model, packed)
    logp_padded, _ = _logps(model, padded)
    assert torch.allclose(logp_packed, logp_padded, atol=1e-4), (logp_packed, logp_padded)
    assert torch.equal(nll_packed, -logp_packed)
    # Each sum runs over its own final answer only (the shared earlier answer "It is" is left out).
    assert padded["labels"].ne(IGNORE_INDEX).sum(1).tolist() == [
        len(tiny_tokenizer(a)["input_ids"]) + 1  # + <|im_end|>
        for a in ("a red circle on the left", "a blue square", "green", "a yellow star on the top")
    ]
    assert len(set(logp_packed.tolist())) == 4


# -- preference records in the loader -----------------------------------------------------------------------
def _preference_file(tmp_path, n: int = 12) -> str:
    (tmp_path / "images").mkdir()
    lines = []
    for i in range(n):
        (tmp_path / "images" / f"{i}.png").write_bytes(png_bytes(i))
        record = {
            "id": f"r{i}",
            "image": f"images/{i}.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the shape?"},
                {"from": "gpt", "value": "red" if i % 2 else "green"},
            ],
            "rejected": "blue",
        }
        if i == 3:
            del record["rejected"]
        if i == 5:
            record["rejected"] = "red"  # equals the chosen answer
        lines.append(json.dumps(record))
    (tmp_path / "prefs.jsonl").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "prefs.jsonl")


@pytest.mark.parametrize("packing", [True, False])
def test_loader_keeps_pairs_together_and_skips_malformed(tmp_path, tiny_processor, packing):
    from sailvl.data.config import DataConfig
    from sailvl.data.loader import build_loader

    path = _preference_file(tmp_path)
    config = DataConfig(
        sources=[{"path": path, "image_root": str(tmp_path), "max_tiles": 1}], max_tokens=256, packing=packing,
        batch_size=2, pack_buffer=4, num_workers=0, shuffle_block=0, preference_pairs=True, max_bad_fraction=0.5,
        min_records_before_abort=1,
    )  # fmt: skip
    loader = build_loader(config, tiny_processor)
    decode = tiny_processor.tokenizer.decode
    seen = []
    for batch, _ in zip(loader, range(4), strict=False):
        ids, labels, seqs = batch["input_ids"], batch["labels"], batch["sequence_ids"]
        assert int(seqs.max()) + 1 == 2 * len(batch["sample_ids"])  # two sequences per record
        answers = []
        for s in range(int(seqs.max()) + 1):
            where = (seqs == s) & (labels != IGNORE_INDEX)
            answers.append(decode(ids[where]).replace("<|im_end|>", "").strip())
        for k, sample_id in enumerate(batch["sample_ids"]):
            i = int(sample_id.split("/r")[1])
            assert answers[2 * k] == ("red" if i % 2 else "green") and answers[2 * k + 1] == "blue"
            seen.append(i)
    assert 3 not in seen and 5 not in seen
    counts = loader.bad_records().counts  # once per pass over the 12 records
    assert set(counts) == {"no_rejected", "rejected_is_chosen"} and counts["no_rejected"] >= 1
    assert counts["no_rejected"] == counts["rejected_is_chosen"]


# -- the reference and one step ----------------------------------------------------------------------------
def test_adapters_off_is_the_start_model(tiny_processor, tiny_tokenizer):
    from sailvl.model.lora import inject_lora, lora_config, lora_targets

    start = tiny_internvl(tiny_tokenizer)
    batch = collate_packs(
        [[_encode_pair(tiny_processor, 1, "red", "blue")]], 256, tiny_tokenizer.pad_token_id
    )
    expected, _ = _logps(start, batch)
    model = tiny_internvl(tiny_tokenizer)
    targets = lora_targets(model, ["llm.*.self_attn.*_proj"])
    model = inject_lora(model, lora_config(targets, 4, 8.0, 0.0), seed=0)
    with torch.no_grad():  # trained adapters: B is no longer zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    with adapters_disabled(model):
        off, _ = _logps(model, batch)
    on, _ = _logps(model, batch)
    assert torch.allclose(off, expected, atol=1e-5)
    assert not torch.allclose(on, expected, atol=1e-2)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)


def test_dpo_step_starts_at_log2_and_learns_the_preference(tiny_processor, tiny_tokenizer):
    torch.manual_seed(0)
    model = tiny_internvl(tiny_tokenizer).train()
    reference = tiny_internvl(tiny_tokenizer).requires_grad_(False)
    rng = random.Random(0)
    items = [_encode_pair(tiny_processor, s, rng.choice(["red", "green"]), "blue square") for s in range(4)]
    batch = collate_packs([items[:2], items[2:]], 512, tiny_tokenizer.pad_token_id)
    objective = DpoObjective(DpoSpec(beta=0.5), reference)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    results = [train_step(model, optimizer, [batch], DistInfo(), torch.float32, 1.0, objective=objective)]
    for _ in range(5):
        results.append(
            train_step(model, optimizer, [batch], DistInfo(), torch.float32, 1.0, objective=objective)
        )
    first, last = results[0], results[-1]
    assert first.loss == pytest.approx(math.log(2), abs=1e-6)  # policy == reference: margin 0
    assert first.samples == 4 and set(first.metrics_t) >= {"rewards/accuracy", "rewards/margin"}
    # Measured: loss 0.693 -> 0.003, reward accuracy 1.0, margin 5.8 after 5 updates on the same 4 pairs.
    assert last.loss < 0.05 and float(last.metrics_t["rewards/accuracy"]) == 1.0
    assert float(last.metrics_t["rewards/margin"]) > 2


def test_synthetic_preference_pairs(tmp_path):
    from sailvl.synth import generate_world
    from sailvl.synth.preference import corrupt_answer
    from sailvl.synth.scenes import COLOURS

    rng = random.Random(0)
    assert corrupt_answer("Yes", "yesno", "", rng) == "No"
    mcq = "Q\nA. red\nB. blue\nC. green\nD. star\nAnswer"
    assert corrupt_answer("B", "mcq", mcq, rng) in "ACD"
    # An answer written as option text then letter is corrupted to another option the same way.
    assert {corrupt_answer("blue B", "mcq", mcq, random.Random(k)) for k in range(40)} == {
        "red A",
        "green C",
        "star D",
    }
    assert corrupt_answer("red", "short", "", rng) in set(COLOURS) - {"red"}
    assert corrupt_answer("3", "short", "", rng) in {"1", "2", "4", "5"}
    assert corrupt_answer("A long caption.", "open", "", rng) is None
    summary = generate_world(tmp_path / "w", 12, 0)
    records = [json.loads(line) for line in (tmp_path / "w" / "preference.jsonl").read_text().splitlines()]
    assert summary["preference"] == len(records) > 0
    sft = {r["id"]: r for r in map(json.loads, (tmp_path / "w" / "sft.jsonl").read_text().splitlines())}
    for r in records:
        chosen = sft[r["id"]]
        assert r["image"] == chosen["image"] and r["conversations"] == chosen["conversations"]
        assert r["rejected"] != r["conversations"][-1]["value"]


def test_ipo_refuses_label_smoothing():
    with pytest.raises(ValueError, match="label_smoothing"):
        DpoSpec(loss="ipo", label_smoothing=0.1)
    assert DpoSpec(loss="ipo").label_smoothing == 0.0
