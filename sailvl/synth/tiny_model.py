"""A complete `tiny` model directory for a synthetic world: BPE tokenizer, random-init model, processor."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sailvl.config.constants import DEFAULT_SYSTEM_PROMPT, IMAGE_PLACEHOLDER
from sailvl.errors import SailvlError
from sailvl.synth.formats import MCQ_SUFFIX, SHORT_SUFFIX, YESNO_SUFFIX

JSONL_FILES = ("pretrain.jsonl", "sft.jsonl", "judge.jsonl", "think.jsonl")
TEXT_COLUMNS = ("question", "hint", "A", "B", "C", "D", "answer")


def world_texts(world_dir: str | Path) -> list[str]:
    """Every text of a world (conversation turns, benchmark questions and options), in file order."""
    world = Path(world_dir)
    if not (world / "sft.jsonl").is_file():
        raise SailvlError(f"{world} is not a synthetic world (no sft.jsonl); run `sailvl synth` first")
    texts = [DEFAULT_SYSTEM_PROMPT, SHORT_SUFFIX, MCQ_SUFFIX, YESNO_SUFFIX, "Image-1: Image-2: Image-3:"]
    for name in JSONL_FILES:
        path = world / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                for turn in json.loads(line)["conversations"]:
                    texts.append(turn["value"].replace(IMAGE_PLACEHOLDER, "").strip())
    csv.field_size_limit(1 << 30)  # base64 image fields exceed the csv module's default limit
    for path in sorted((world / "bench").glob("*.tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                texts.extend(row[c] for c in TEXT_COLUMNS if row.get(c))
    return texts


def train_tokenizer(
    texts: list[str], out_dir: str | Path | None = None, vocab_size: int = 1024, think_tokens: bool = False
):
    """Byte-level BPE with sailvl's special tokens and chat template, trained on `texts` (seconds); with
    `think_tokens`, `<think>` and `</think>` are single tokens too.

    Saved in Hugging Face format to `out_dir` when given; returns the `PreTrainedTokenizerFast`."""
    # Local imports here and below: sailvl.synth exports this module, and the world (PIL/numpy) should not
    # import transformers and torch (about 4 s) for the few callers that build a model.
    from sailvl.data.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(texts, vocab_size=vocab_size, think_tokens=think_tokens)
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def make_tiny_model_dir(
    world_dir: str | Path, out_dir: str | Path, seed: int = 0, vocab_size: int = 1024
) -> Path:
    """Write a loadable `tiny` model directory (safetensors weights, config, tokenizer, processor settings).

    The tokenizer is trained on the world's text (with `<think>` / `</think>` tokens when the world has
    think.jsonl); the model is the random-init `tiny` preset (112 px tiles) seeded with `seed`. Load it back
    with `sailvl.model.load_model` and `SailVLProcessor.from_pretrained`."""
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import build_model, save_model

    think = (Path(world_dir) / "think.jsonl").is_file()
    tokenizer = train_tokenizer(world_texts(world_dir), vocab_size=vocab_size, think_tokens=think)
    model = build_model("tiny", seed=seed, tokenizer=tokenizer)
    processor = SailVLProcessor.for_model(tokenizer, model.config)
    out = save_model(model, out_dir)
    processor.save_pretrained(out)
    return out
