"""Batched generation with transformers' `generate` (left padding, greedy or sampled)."""

from __future__ import annotations

from typing import Any

import torch

from sailvl.errors import SailvlError
from sailvl.infer.request import GenRequest, as_image
from sailvl.infer.vision_cache import VisionCache, inputs_embeds, tile_placeholders
from sailvl.infer.vllm_backend import generate_vllm

BACKENDS = ("transformers", "vllm")


def generation_kwargs(tokenizer, max_new_tokens: int, do_sample: bool, temperature: float) -> dict:
    """Keyword arguments for `model.generate`: stop at `<|im_end|>`, pad with the pad token.

    `temperature` (> 0) only matters with `do_sample`; `temperature == 0` means greedy decoding.
    """
    if max_new_tokens < 1:
        raise SailvlError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise SailvlError(f"temperature must be >= 0, got {temperature}")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "eos_token_id": tokenizer.eos_token_id}
    kwargs["pad_token_id"] = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    if do_sample and temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature)
    else:
        # Explicit values so a sampling-flavoured generation_config.json in the model dir cannot leak in.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def model_inputs(
    model,
    processor,
    requests: list[GenRequest],
    max_tiles: int | None,
    msac: bool,
    cache: VisionCache | None = None,
) -> dict:
    """A left-padded batch on the model's device: `input_ids`, `attention_mask`, `pixel_values` (or absent); with
    a `cache`, `inputs_embeds` holding the images' cached embeddings instead of `pixel_values`."""
    prompts = [r.prompt() for r in requests]
    images = [[as_image(ref) for ref in r.images] for r in requests]
    embeds = cache.encode(model, processor, images, max_tiles, msac) if cache else None
    tiles = tile_placeholders(embeds, processor.num_image_tokens) if embeds is not None else images
    batch = processor.encode_prompts(prompts, tiles, max_tiles=max_tiles, msac=msac)
    device = next(model.parameters()).device
    inputs = {
        "input_ids": batch["input_ids"].to(device),
        "attention_mask": batch["attention_mask"].to(device),
    }
    if embeds is not None:
        inputs["inputs_embeds"] = inputs_embeds(model, inputs["input_ids"], [e for es in embeds for e in es])
    elif batch.get("pixel_values") is not None:
        inputs["pixel_values"] = batch["pixel_values"].to(device=device, dtype=model.dtype)
    return inputs


@torch.no_grad()
def generate_ids(
    model,
    processor,
    requests: list[GenRequest],
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 1.0,
    max_tiles: int | None = None,
    msac: bool = False,
    cache: VisionCache | None = None,
) -> list[list[int]]:
    """Generated token ids (prompt removed, stopping `<|im_end|>` and padding dropped) for one batch."""
    inputs = model_inputs(model, processor, requests, max_tiles, msac, cache)
    kwargs = generation_kwargs(processor.tokenizer, max_new_tokens, do_sample, temperature)
    output = model.generate(**inputs, **kwargs)
    return new_tokens(output, inputs["input_ids"].shape[1], kwargs)


def new_tokens(output: torch.Tensor, prompt_width: int, kwargs: dict) -> list[list[int]]:
    """Each row's generated ids: the (left-padded) prompt's `prompt_width` columns removed, cut before the first
    stop or pad token (`kwargs` from `generation_kwargs`)."""
    stop = {kwargs["eos_token_id"], kwargs["pad_token_id"]}
    trimmed = []
    for row in output[:, prompt_width:].tolist():
        end = next((i for i, t in enumerate(row) if t in stop), len(row))
        trimmed.append(row[:end])
    return trimmed


def generate(
    model,
    processor,
    requests: list[GenRequest],
    max_new_tokens: int = 128,
    do_sample: bool = False,
    temperature: float = 1.0,
    batch_size: int = 8,
    max_tiles: int | None = None,
    msac: bool = False,
    backend: str = "transformers",
    cache: VisionCache | None = None,
) -> list[str]:
    """Answer each request (in order) with the model; `batch_size` prompts per `generate` call.

    `backend="vllm"` serves the model directory `model` was loaded from with vLLM (GPU, optional install).
    With a `cache` (transformers), an image already tiled and encoded for an earlier prompt is not again.
    Special tokens are removed from the answers.
    """
    if backend not in BACKENDS:
        raise SailvlError(f"unknown generation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if batch_size < 1:
        raise SailvlError(f"batch_size must be at least 1, got {batch_size}")
    if backend == "vllm":
        return generate_vllm(
            model, processor, requests, max_new_tokens, do_sample, temperature, max_tiles, msac
        )
    order = list(range(len(requests)))
    if len(requests) > batch_size:  # batches of similar length: less left padding
        requests = [decoded(r) for r in requests]
        lengths = [prompt_length(processor, r, max_tiles) for r in requests]
        order.sort(key=lambda i: lengths[i])
    answers: dict[int, str] = {}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids = generate_ids(
                model, processor, [requests[i] for i in chunk], max_new_tokens, do_sample, temperature,
                max_tiles, msac, cache,
            )  # fmt: skip
            answers.update(
                zip(chunk, processor.tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True)
            )
    finally:
        model.train(was_training)
    return [answers[i] for i in range(len(requests))]


def decoded(request: GenRequest) -> GenRequest:
    """The request with its images decoded (RGB PIL images)."""
    return GenRequest([as_image(ref) for ref in request.images], request.question, request.conversation)


def prompt_length(processor, request: GenRequest, max_tiles: int | None) -> int:
    """Estimated tokens of a request with decoded images: image tokens by tile count, text by characters / 4."""
    limit = processor.tile_limit(len(request.images), max_tiles)
    tiles = sum(processor.count_tiles(im.width, im.height, limit) for im in request.images)
    prompt = request.prompt()
    text = prompt if isinstance(prompt, str) else " ".join(str(turn.get("content", "")) for turn in prompt)
    return tiles * processor.num_image_tokens + len(text) // 4
