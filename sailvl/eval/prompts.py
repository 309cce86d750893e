"""Benchmark prompts in VLMEvalKit's InternVL style: image placeholders, hint, options, task suffix."""

from __future__ import annotations

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.eval.registry import DIRECT_SUFFIX, MCQ_SUFFIX, SHORT_SUFFIX, YESNO_SUFFIX, BenchmarkSpec
from sailvl.eval.tsv import BenchItem

# Bump when a prompt changes (wording, suffixes, image placeholders): cached predictions pin this version,
# so answers to the old prompts are never reused (sailvl.eval.fingerprint).
PROMPT_VERSION = 1


def image_prefix(num_images: int) -> str:
    """`<image>\\n` for one image; `Image-k: <image>\\n` per image for several (SAIL-VL chat format)."""
    if num_images == 0:
        return ""
    if num_images == 1:
        return f"{IMAGE_PLACEHOLDER}\n"
    return "".join(f"Image-{k}: {IMAGE_PLACEHOLDER}\n" for k in range(1, num_images + 1))


def _auto_suffix(item: BenchItem) -> str:
    if len(item.options) >= 2:
        return MCQ_SUFFIX
    if item.answer.strip().lower() in ("yes", "no"):
        return YESNO_SUFFIX
    return SHORT_SUFFIX


def _image_prefix(item: BenchItem) -> str:
    if IMAGE_PLACEHOLDER in item.question:
        return ""  # the question already places its images (interleaved multi-image benchmarks)
    return image_prefix(len(item.images))


def vlmevalkit_prompt(spec: BenchmarkSpec, item: BenchItem) -> str:
    """A registered benchmark's prompt as VLMEvalKit's InternVL / SAIL-VL adapters build it
    (vlmeval/vlm/internvl/utils.py build_multi_choice_prompt, InternVLChat.build_prompt): MCQ is
    `hint\nquestion\nA. ..` plus the letter instruction ("Answer the question directly." without
    options); other tasks are the question followed by the benchmark's suffix, separator included."""
    if spec.task != "mcq":
        return _image_prefix(item) + item.question + spec.prompt_suffix
    text = f"{item.hint}\n{item.question}" if item.hint else item.question
    text += "".join(f"\n{letter}. {option}" for letter, option in item.options.items())
    text += f"\n{MCQ_SUFFIX}" if item.options else f"\n{DIRECT_SUFFIX}"
    return _image_prefix(item) + text


def build_prompt(spec: BenchmarkSpec, item: BenchItem) -> str:
    """The user turn for `item`. Registered benchmarks: VLMEvalKit's prompt (`vlmevalkit_prompt`).
    Unregistered TSVs (the synthetic world): sailvl's training format, i.e. image placeholders,
    `Hint: ...`, question, lettered options, then the task's instruction picked per row."""
    if spec.task != "auto":
        return vlmevalkit_prompt(spec, item)
    parts = [f"Hint: {item.hint}"] if item.hint else []
    parts.append(item.question)
    parts.extend(f"{letter}. {text}" for letter, text in item.options.items())
    parts.append(_auto_suffix(item))
    return _image_prefix(item) + "\n".join(parts)


def tiles_for(spec: BenchmarkSpec, item: BenchItem, max_tiles: int | None, per_sample_cap: int) -> int:
    """Max tiles per image for `item`: the override or the benchmark default, reduced so that all
    images of the sample together stay within `per_sample_cap` tiles."""
    tiles = max_tiles if max_tiles is not None else spec.max_tiles
    if len(item.images) > 1:
        tiles = min(tiles, max(1, per_sample_cap // len(item.images)))
    return tiles
