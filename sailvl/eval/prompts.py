"""Benchmark prompts in VLMEvalKit's InternVL style: image placeholders, hint, options, task suffix."""

from __future__ import annotations

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.eval.registry import MCQ_SUFFIX, SHORT_SUFFIX, YESNO_SUFFIX, BenchmarkSpec
from sailvl.eval.tsv import BenchItem


def image_prefix(num_images: int) -> str:
    """`<image>\\n` for one image; `Image-k: <image>\\n` per image for several (SAIL-VL chat format)."""
    if num_images == 0:
        return ""
    if num_images == 1:
        return f"{IMAGE_PLACEHOLDER}\n"
    return "".join(f"Image-{k}: {IMAGE_PLACEHOLDER}\n" for k in range(1, num_images + 1))


def _suffix(spec: BenchmarkSpec, item: BenchItem) -> str:
    if spec.task != "auto":
        return MCQ_SUFFIX if spec.task == "mcq" and item.options else spec.prompt_suffix
    if len(item.options) >= 2:
        return MCQ_SUFFIX
    if item.answer.strip().lower() in ("yes", "no"):
        return YESNO_SUFFIX
    return SHORT_SUFFIX


def build_prompt(spec: BenchmarkSpec, item: BenchItem) -> str:
    """The user turn for `item`: image placeholders, optional hint, question, lettered options,
    then the task's instruction (MCQ letter / single word or phrase / yes or no)."""
    question = item.question
    if IMAGE_PLACEHOLDER in question:
        prefix = ""  # the question already places its images (interleaved multi-image benchmarks)
    else:
        prefix = image_prefix(len(item.images))
    parts = []
    if item.hint:
        parts.append(f"Hint: {item.hint}")
    parts.append(question)
    parts.extend(f"{letter}. {text}" for letter, text in item.options.items())
    suffix = _suffix(spec, item)
    if suffix:
        parts.append(suffix)
    return prefix + "\n".join(parts)


def tiles_for(spec: BenchmarkSpec, item: BenchItem, max_tiles: int | None, per_sample_cap: int) -> int:
    """Max tiles per image for `item`: the override or the benchmark default, reduced so that all
    images of the sample together stay within `per_sample_cap` tiles."""
    tiles = max_tiles if max_tiles is not None else spec.max_tiles
    if len(item.images) > 1:
        tiles = min(tiles, max(1, per_sample_cap // len(item.images)))
    return tiles
