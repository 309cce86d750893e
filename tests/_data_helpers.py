"""Helpers for the data-pipeline tests: synthetic image-text sources and a tiny InternVL model."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from PIL import Image

from sailvl.data.sample import Sample

WORDS = ["red", "green", "blue", "circle", "square", "star", "left", "right", "top", "the", "is", "a", "on"]


def png_bytes(seed: int, size: tuple[int, int] = (112, 112)) -> bytes:
    """A small PNG whose colour depends on `seed`."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def synthetic_samples(n: int, source: str = "syn", seed: int = 0, max_words: int = 30, images: bool = True):
    """`n` Samples with 0-2 byte images and answers of 1..max_words words (deterministic)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        n_images = rng.choice([0, 1, 1, 2]) if images else 0
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))
        sizes = [(rng.choice([60, 112, 200]), rng.choice([60, 112, 150])) for _ in range(n_images)]
        out.append(
            Sample(
                id=f"{source}-{i}",
                source=source,
                images=[png_bytes(seed * 100_000 + i * 10 + k, sizes[k]) for k in range(n_images)],
                conversation=[
                    {"role": "user", "content": "<image>\n" * n_images + question},
                    {"role": "assistant", "content": answer},
                ],
                metadata={"i": i},
            )
        )
    return out


def write_internvl_jsonl(samples: list[Sample], directory: Path, name: str = "data") -> Path:
    """Write samples as InternVL `conversations` JSONL with relative image paths under `directory/images`."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl"
    with open(path, "w") as fh:
        for sample in samples:
            rel = []
            for k, data in enumerate(sample.images):
                rel.append(f"images/{sample.id}_{k}.png")
                (directory / rel[-1]).write_bytes(data)
            turns = [
                {"from": "human" if t["role"] == "user" else "gpt", "value": t["content"]}
                for t in sample.conversation
            ]
            record = {"id": sample.id, "conversations": turns, "meta": sample.metadata["i"]}
            if len(rel) == 1:
                record["image"] = rel[0]
            elif rel:
                record["image"] = rel
            fh.write(json.dumps(record) + "\n")
    return path


def tiny_internvl(tokenizer, attn_implementation: str = "sdpa", seed: int = 0):
    """A random InternVLForConditionalGeneration: ViT hidden 32 x 1 layer at 112 px / patch 14, Qwen2 hidden 64."""
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from sailvl.config.constants import IMG_CONTEXT

    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": [112, 112],
            "patch_size": [14, 14],
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        downsample_ratio=0.5,
        attn_implementation=attn_implementation,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    model.set_attn_implementation(attn_implementation)
    return model
