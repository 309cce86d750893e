"""Acceptance: a tiny VLM trained briefly on a colour-only synthetic world answers held-out colour questions."""

import base64
import io
import json
import random

import pandas as pd
import pytest
import torch
from PIL import Image

ROLES = {"human": "user", "gpt": "assistant"}


def _conversation(record: dict) -> list[dict]:
    return [{"role": ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]]


def _batch(encoded: list, pad_id: int) -> dict:
    """Right-padded batch of EncodedSamples (one 112 px tile each)."""
    length = max(len(e.input_ids) for e in encoded)
    input_ids = torch.full((len(encoded), length), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), length), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), length), dtype=torch.long)
    for i, e in enumerate(encoded):
        input_ids[i, : len(e.input_ids)] = e.input_ids
        labels[i, : len(e.labels)] = e.labels
        mask[i, : len(e.input_ids)] = 1
    pixels = torch.cat([e.pixel_values for e in encoded])
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask, "pixel_values": pixels}


def _answer_logprobs(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of the labelled (answer) tokens of each row."""
    labels = batch.pop("labels")
    logits = model(**batch).logits[:, :-1].float()
    targets = labels[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * (targets != -100)).sum(dim=1)


def train_and_score(
    world, model_dir, steps: int, batch_size: int = 8, lr: float = 1e-3, seed: int = 0
) -> float:
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model
    from sailvl.synth.qa import SHORT_SUFFIX
    from sailvl.synth.scenes import COLOURS

    torch.manual_seed(seed)
    processor = SailVLProcessor.from_pretrained(model_dir)
    model = load_model(model_dir).train()
    pad_id = processor.tokenizer.pad_token_id
    records = [json.loads(line) for line in open(world / "sft.jsonl")]
    images = {r["image"]: Image.open(world / r["image"]).convert("RGB") for r in records}
    encoded = [processor.encode_sample(_conversation(r), [images[r["image"]]]) for r in records]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 20) * (1 - s / steps)
    )
    rng = random.Random(seed)
    for _ in range(steps):
        loss = model(**_batch(rng.sample(encoded, batch_size), pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

    model.eval()
    bench = pd.read_csv(world / "bench" / "synth_vqa.tsv", sep="\t")
    bench = bench[bench["category"] == "colour"]
    colours = list(COLOURS)
    correct = 0
    with torch.no_grad():
        for _, row in bench.iterrows():
            image = Image.open(io.BytesIO(base64.b64decode(row["image"]))).convert("RGB")
            question = f"<image>\n{row['question']}\n{SHORT_SUFFIX}"
            options = [
                processor.encode_sample(
                    [{"role": "user", "content": question}, {"role": "assistant", "content": c}], [image]
                )
                for c in colours
            ]
            scores = _answer_logprobs(model, _batch(options, pad_id))
            correct += colours[int(scores.argmax())] == row["answer"]
    return correct / len(bench)


@pytest.mark.slow
def test_tiny_model_learns_colours_from_the_synthetic_world(tmp_path):
    from sailvl.synth import generate_world
    from sailvl.synth.scenes import COLOURS
    from sailvl.synth.tiny_model import make_tiny_model_dir

    # One large shape per image: with the default 1-5 small shapes the tiny model needs thousands of steps
    # before it attends to the right image token (measured: still at chance after 800 steps).
    world = tmp_path / "world"
    generate_world(world, n=600, seed=0, tasks=["colour"], n_bench=48, max_objects=1, object_scale=2.0)
    model_dir = make_tiny_model_dir(world, tmp_path / "model", seed=0)
    accuracy = train_and_score(world, model_dir, steps=800)
    chance = 1 / len(COLOURS)
    # Measured 0.96 (46 of 48) after 800 steps on 2026-12-03, 0.94 (45 of 48) when first written: seeded, but one
    # item moves between machines / library versions. 0.85 (41 of 48) leaves that drift a few items.
    assert accuracy >= 0.85, f"held-out colour accuracy {accuracy:.2f} (chance {chance:.2f})"
