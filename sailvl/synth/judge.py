"""Judge data: (image, caption) pairs with a yes/no alignment label and a 1-5 richness score.

Negatives corrupt exactly one attribute of the scene and re-caption it with the same wording choices."""

from __future__ import annotations

import random
from dataclasses import replace

from sailvl.synth.captions import caption_sentences
from sailvl.synth.scenes import COLOURS, SHAPES, Scene
from sailvl.synth.text_ocr import WORDS, sample_text

ALIGN_PROMPT = "Does this caption correctly describe the image? Caption: {caption}\nAnswer yes or no."
RICHNESS_PROMPT = (
    "Rate the visual information richness of the caption from 1 (almost nothing) to 5 (every object and "
    "attribute in the image). Answer with a single number."
)


def corrupt_scene(scene: Scene, rng: random.Random) -> tuple[Scene, str]:
    """A copy of `scene` with one attribute changed; returns (scene, attribute name)."""
    if scene.kind == "shapes":
        objs = list(scene.objects)
        k = rng.randrange(len(objs))
        o = objs[k]
        present = {(p.colour, p.shape) for p in objs}
        options = (
            ["colour", "shape"]
            + (["position"] if len(objs) < 9 else [])
            + (["count"] if len(objs) > 1 else [])
        )
        attribute = rng.choice(options)
        if attribute == "colour":
            colour = rng.choice([c for c in COLOURS if (c, o.shape) not in present])
            objs[k] = replace(o, colour=colour, rgb=COLOURS[colour])
        elif attribute == "shape":
            objs[k] = replace(o, shape=rng.choice([s for s in SHAPES if (o.colour, s) not in present]))
        elif attribute == "position":
            free = sorted(set(range(9)) - {p.row * 3 + p.col for p in objs})
            row, col = divmod(rng.choice(free), 3)
            objs[k] = replace(o, row=row, col=col, cx=(col + 0.5) / 3, cy=(row + 0.5) / 3)
            objs.sort(key=lambda p: (p.row, p.col))
        else:
            objs.pop(k)
        return replace(scene, objects=tuple(objs)), attribute
    if scene.kind == "digits":
        digits = list(scene.digits)
        k = rng.randrange(len(digits))
        digits[k] = replace(digits[k], value=rng.choice([v for v in range(10) if v != digits[k].value]))
        return replace(scene, digits=tuple(digits)), "digit"
    if scene.kind == "text":
        words = list(scene.words)
        k = rng.randrange(len(words))
        present = {w.text for w in words}
        text = sample_text(rng)
        while text in present:
            text = rng.choice(WORDS)
        words[k] = replace(words[k], text=text)
        return replace(scene, words=tuple(words)), "ocr"
    bars = list(scene.bars)
    k = rng.randrange(len(bars))
    bars[k] = replace(bars[k], value=rng.choice([v for v in range(1, 10) if v != bars[k].value]))
    return replace(scene, bars=tuple(bars)), "chart"


def judge_conversation(caption: str, aligned: bool, richness: int) -> list[dict]:
    """Two turns: image-text alignment (yes/no), then visual information richness (1-5)."""
    return [
        {"from": "human", "value": "<image>\n" + ALIGN_PROMPT.format(caption=caption)},
        {"from": "gpt", "value": "Yes" if aligned else "No"},
        {"from": "human", "value": RICHNESS_PROMPT},
        {"from": "gpt", "value": str(richness)},
    ]


def judge_pairs(
    scene: Scene, caption_seed: int, alt: str, alt_wrong: str | None, rng: random.Random
) -> list[dict]:
    """Judge records (without id/image) for one image: a positive, a one-attribute negative, maybe the alt-text.

    `caption_seed` must be the seed the gold caption was written with, so the negative differs only in the
    corrupted attribute. Richness: full caption 5, partial caption 2-4 by sentences kept, alt-text 1."""
    sentences = caption_sentences(scene, random.Random(caption_seed))
    records = []
    if len(sentences) > 1 and rng.random() < 0.5:
        keep = rng.randint(1, len(sentences) - 1)
        caption = " ".join(sentences[:keep])
        records.append(_record(caption, True, 1 + round(3 * keep / len(sentences)), None, "partial"))
    else:
        records.append(_record(" ".join(sentences), True, 5, None, "detailed"))
    bad_scene, attribute = corrupt_scene(scene, rng)
    bad_caption = " ".join(caption_sentences(bad_scene, random.Random(caption_seed)))
    if bad_caption != " ".join(sentences):
        records.append(_record(bad_caption, False, 5, attribute, "corrupted"))
    if rng.random() < 0.5:
        records.append(_record(alt, alt_wrong is None, 1, alt_wrong, "alt"))
    return records


def _record(caption: str, aligned: bool, richness: int, corrupted: str | None, source: str) -> dict:
    return {
        "caption": caption,
        "aligned": "yes" if aligned else "no",
        "richness": richness,
        "corrupted_attribute": corrupted,
        "caption_source": source,
        "conversations": judge_conversation(caption, aligned, richness),
    }
