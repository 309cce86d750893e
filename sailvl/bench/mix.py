"""The realistic SFT mix `sailvl bench data` times by default: photo-sized JPEGs, 448 px tiles, SFT-like text lengths.

Images: the photographs shipped with scikit-image and scikit-learn (astronaut, coffee, rocket, chelsea, Hubble,
retina, china, flower), cropped to a drawn aspect ratio and resized so the long side is 800-2048 px (phone / web
photo sizes), JPEG q90. With 448 px tiles and at most 12 tiles the tiler's grid follows the aspect ratio, so samples
carry 1-12 tiles (+ thumbnail).

Text lengths (answer tokens) are lognormal, the usual shape of response lengths: detailed captions with median
190 tokens (ShareGPT4V reports 942 characters per caption on average, ~190 BPE tokens), sigma 0.35; instruction
answers with median 40 tokens, sigma 1.0 (LLaVA-style SFT: one-word VQA answers to multi-paragraph responses).
The mix is 35% captions / 65% QA with 0-2 images (mostly one). These are assumptions from published averages, not a
fit to the raw datasets, which are not on this machine.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from sailvl.data.config import DataConfig
from sailvl.data.processor import SailVLProcessor
from sailvl.data.tokenizer import train_bpe_tokenizer

WORDS = (
    "the a red green blue circle square star left right top bottom is on of and with near large small photo "
    "shows man woman dog cat street building sky tree water car people table light dark background front"
).split()
ASPECTS = [(1, 1), (4, 3), (3, 4), (16, 9), (9, 16), (3, 2), (2, 3), (2, 1), (1, 2), (3, 1)]
LONG_SIDES = [800, 1024, 1280, 1600, 2048]
CAPTION_SHARE, CAPTION_MEDIAN, CAPTION_SIGMA = 0.35, 190, 0.35
QA_MEDIAN, QA_SIGMA = 40, 1.0


def _photos() -> list[np.ndarray]:
    """RGB uint8 photographs bundled with scikit-image / scikit-learn (no download)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "retina")
    return [getattr(skimage.data, n)()[..., :3] for n in names] + list(load_sample_images().images)


def photo_jpeg(photo: np.ndarray, aspect: tuple[int, int], long_side: int, quality: int = 90) -> bytes:
    """Crop `photo` to `aspect` (cols:rows), resize so its long side is `long_side` px, encode as JPEG."""
    height, width = photo.shape[:2]
    cols, rows = aspect
    if width / height > cols / rows:
        new_w, new_h = int(height * cols / rows), height
    else:
        new_w, new_h = width, int(width * rows / cols)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    image = Image.fromarray(photo[top : top + new_h, left : left + new_w])
    scale = long_side / max(new_w, new_h)
    image = image.resize(
        (max(1, round(new_w * scale)), max(1, round(new_h * scale))), Image.Resampling.BICUBIC
    )
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _text(rng: random.Random, tokens: int) -> str:
    return " ".join(rng.choices(WORDS, k=max(1, tokens)))


def write_realistic_mix(directory: str | Path, n: int = 600, n_images: int = 30, seed: int = 0) -> DataConfig:
    """Write `n` SFT records over `n_images` photo JPEGs to `directory`; returns the DataConfig that reads them
    the way the GPU preset trains (8192-token packs for flex_attention, at most 32 tiles per pack, one pack per
    batch)."""
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    photos = _photos()
    for k in range(n_images):
        data = photo_jpeg(rng.choice(photos), rng.choice(ASPECTS), rng.choice(LONG_SIDES))
        (directory / "images" / f"{k}.jpg").write_bytes(data)
    with open(directory / "sft.jsonl", "w") as fh:
        for i in range(n):
            caption = rng.random() < CAPTION_SHARE
            if caption:
                images = 1
                answer = round(rng.lognormvariate(np.log(CAPTION_MEDIAN), CAPTION_SIGMA))
                question = "Describe the image in detail."
            else:
                images = rng.choice([0, 1, 1, 1, 1, 1, 2])
                answer = round(rng.lognormvariate(np.log(QA_MEDIAN), QA_SIGMA))
                question = _text(rng, rng.randint(5, 30))
            record = {
                "id": f"sft-{i}",
                "image": [f"images/{rng.randrange(n_images)}.jpg" for _ in range(images)],
                "conversations": [
                    {"from": "human", "value": "<image>\n" * images + question},
                    {"from": "gpt", "value": _text(rng, min(answer, 2000))},
                ],
            }
            fh.write(json.dumps(record) + "\n")
    return DataConfig(
        sources=[{"path": str(directory / "sft.jsonl"), "image_root": str(directory)}],
        max_tokens=8192,
        max_tiles_per_pack=32,
        pack_buffer=128,
        attention_mask="flex",  # the GPU kernel's: segment ids, not a 64 MiB 8192^2 bool mask per pack
        num_workers=0,
    )


def realistic_processor():
    """The real tiling settings (448 px tiles, 1-12 tiles + thumbnail, 256 tokens per tile) over a small local BPE
    tokenizer (about one token per word of the mix)."""
    tokenizer = train_bpe_tokenizer([" ".join(WORDS)] * 4 + ["You are a helpful assistant."], vocab_size=400)
    return SailVLProcessor(tokenizer, tile_size=448, patch_size=14, downsample_ratio=0.5, max_tiles=12)
