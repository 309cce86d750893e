"""Teacher-forced scoring: how likely a model finds a given answer, token by token (caption likelihood,
generative image-text alignment)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sailvl.data.template import IGNORE_INDEX
from sailvl.errors import SailvlError
from sailvl.infer.request import GenRequest, as_image
from sailvl.infer.vision_cache import VisionCache, inputs_embeds, tile_placeholders


@dataclass
class AnswerScores:
    """Per-token scores of one answer: `logprobs[t]` = log p(token t), `margins[t]` = log p(token t) minus the
    log-probability of the model's own top choice at t (0 where the answer agrees with the model, negative
    where the model expected something else). The closing `<|im_end|>` is not scored."""

    tokens: list[int]
    logprobs: torch.Tensor
    margins: torch.Tensor


def _encode(processor, images: list, request: GenRequest, answer: str, max_tiles: int | None):
    prompt = request.prompt()
    conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    conversation = [*conversation, {"role": "assistant", "content": answer}]
    return processor.encode_sample(conversation, images, max_tiles=max_tiles)


@torch.no_grad()
def score_answers(
    model,
    processor,
    requests: list[GenRequest],
    answers: list[str],
    batch_size: int = 8,
    max_tiles: int | None = None,
    cache: VisionCache | None = None,
) -> list[AnswerScores]:
    """Score `answers[i]` as the assistant's reply to `requests[i]`; returns one `AnswerScores` per request,
    in order. Requests are batched by length (less padding), and the LM head and log-softmax run only at the
    answer's positions (not over every prompt and image token). With a `cache`, each image is tiled and goes
    through the vision tower once for this and any later call that asks about it."""
    if len(requests) != len(answers):
        raise SailvlError(
            f"score_answers needs one answer per request, got {len(answers)} for {len(requests)}"
        )
    if batch_size < 1:
        raise SailvlError(f"batch_size must be at least 1, got {batch_size}")
    was_training = model.training
    model.eval()
    images = [[as_image(ref) for ref in r.images] for r in requests]
    embeds = cache.encode(model, processor, images, max_tiles, False) if cache else None
    tiles = tile_placeholders(embeds, processor.num_image_tokens) if embeds is not None else images
    encoded = [
        _encode(processor, t, r, a, max_tiles) for t, r, a in zip(tiles, requests, answers, strict=True)
    ]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    out: dict[int, AnswerScores] = {}
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            chunk_embeds = [e for i in chunk for e in embeds[i]] if embeds is not None else None
            scores = _score_batch(model, processor, [encoded[i] for i in chunk], chunk_embeds)
            out.update(zip(chunk, scores, strict=True))
    finally:
        model.train(was_training)
    return [out[i] for i in range(len(encoded))]


def _score_batch(model, processor, encoded: list, image_embeds: list | None = None) -> list[AnswerScores]:
    """One right-padded forward pass of the base model; logits only where an answer token is predicted.
    `image_embeds`: the batch's images already encoded (`VisionCache`), in prompt order, instead of its tiles."""
    device = next(model.parameters()).device
    length = max(len(e.input_ids) for e in encoded)
    pad = processor.tokenizer.pad_token_id or 0
    input_ids = torch.full((len(encoded), length), pad, dtype=torch.long)
    attention = torch.zeros((len(encoded), length), dtype=torch.long)
    rows, positions, tokens = [], [], []
    for i, e in enumerate(encoded):
        input_ids[i, : len(e.input_ids)] = e.input_ids
        attention[i, : len(e.input_ids)] = 1
        # Position t predicts token t + 1: the last answer's tokens, without its closing <|im_end|>.
        targets = torch.as_tensor(e.labels)[1:]
        at = last_run((targets != IGNORE_INDEX).nonzero().flatten())[:-1]
        rows.append(torch.full_like(at, i))
        positions.append(at)
        tokens.append(targets[at])
    inputs = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}
    pixels = [e.pixel_values for e in encoded if len(e.pixel_values)]
    if image_embeds is not None:
        inputs["inputs_embeds"] = inputs_embeds(model, inputs.pop("input_ids"), image_embeds)
    elif pixels:
        inputs["pixel_values"] = torch.cat(pixels).to(device=device, dtype=model.dtype)
    hidden = model.base_model(**inputs).last_hidden_state
    row, pos = torch.cat(rows).to(device), torch.cat(positions).to(device)
    logp = torch.log_softmax(model.get_output_embeddings()(hidden[row, pos]).float(), dim=-1)
    target = torch.cat(tokens).to(device)
    token_logp = logp.gather(-1, target[:, None])[:, 0].cpu()
    margins = token_logp - logp.max(dim=-1).values.cpu()
    out, offset = [], 0
    for at, tok in zip(positions, tokens, strict=True):
        n = len(at)
        out.append(AnswerScores(tok.tolist(), token_logp[offset : offset + n], margins[offset : offset + n]))
        offset += n
    return out


def last_run(positions: torch.Tensor) -> torch.Tensor:
    """The last run of consecutive positions (the final assistant answer of a multi-turn conversation)."""
    if len(positions) == 0:
        return positions
    breaks = (positions[1:] - positions[:-1] != 1).nonzero().flatten()
    return positions[int(breaks[-1]) + 1 :] if len(breaks) else positions
