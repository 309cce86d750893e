"""Shared test fixtures: a tiny locally trained tokenizer and a SailVLProcessor at 112 px tiles."""

import itertools
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
SHAPES = ["circle", "square", "triangle", "star", "line", "cross"]
PLACES = ["left", "right", "top", "bottom", "middle"]


def tiny_corpus() -> list[str]:
    """A fixed corpus of short colour/shape/digit sentences and chat words (deterministic order)."""
    lines = ["You are a helpful assistant.", "system", "user", "assistant", "Image-1: Image-2: Image-3:"]
    for colour, shape, place in itertools.product(COLOURS, SHAPES, PLACES):
        lines.append(f"A {colour} {shape} is on the {place}.")
        lines.append(f"What colour is the {shape}? It is {colour}.")
    for number in range(100):
        lines.append(f"There are {number} shapes. The answer is {number % 10}.")
    return lines


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """Byte-level BPE (vocab 512) with the SAIL-VL special tokens and the sailvl-chat template."""
    from sailvl.data.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(tiny_corpus(), vocab_size=512)


@pytest.fixture
def tiny_processor(tiny_tokenizer):
    """SailVLProcessor with 112 px tiles, patch 14, ratio 0.5 (16 image tokens per tile), max 4 tiles."""
    from sailvl.data.processor import SailVLProcessor

    return SailVLProcessor(tiny_tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=4)
