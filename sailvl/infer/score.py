"""Teacher-forced scoring: how likely a model finds a given answer, token by token (caption likelihood,
generative image-text alignment)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sailvl.data.template import IGNORE_INDEX
from sailvl.errors import SailvlError
from sailvl.infer.generate import GenRequest, as_image


@dataclass
class AnswerScores:
    """Per-token scores of one answer: `logprobs[t]` = log p(token t), `margins[t]` = log p(token t) minus the
    log-probability of the model's own top choice at t (0 where the answer agrees with the model, negative
    where the model expected something else). The closing `<|im_end|>` is not scored."""

    tokens: list[int]
    logprobs: torch.Tensor
    margins: torch.Tensor


def _encode(processor, request: GenRequest, answer: str, max_tiles: int | None):
    prompt = request.prompt()
    conversation = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    conversation = [*conversation, {"role": "assistant", "content": answer}]
    images = [as_image(ref) for ref in request.images]
    return processor.encode_sample(conversation, images, max_tiles=max_tiles)


@torch.no_grad()
def score_answers(
    model,
    processor,
    requests: list[GenRequest],
    answers: list[str],
    batch_size: int = 8,
    max_tiles: int | None = None,
) -> list[AnswerScores]:
    """Score `answers[i]` as the assistant's reply to `requests[i]` (one forward pass per batch, right
    padding); returns one `AnswerScores` per request, in order."""
    if len(requests) != len(answers):
        raise SailvlError(
            f"score_answers needs one answer per request, got {len(answers)} for {len(requests)}"
        )
    if batch_size < 1:
        raise SailvlError(f"batch_size must be at least 1, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[AnswerScores] = []
    try:
        for start in range(0, len(requests), batch_size):
            encoded = [
                _encode(processor, r, a, max_tiles)
                for r, a in zip(
                    requests[start : start + batch_size], answers[start : start + batch_size], strict=True
                )
            ]
            length = max(len(e.input_ids) for e in encoded)
            pad = processor.tokenizer.pad_token_id or 0
            input_ids = torch.full((len(encoded), length), pad, dtype=torch.long)
            labels = torch.full((len(encoded), length), IGNORE_INDEX, dtype=torch.long)
            attention = torch.zeros((len(encoded), length), dtype=torch.long)
            for i, e in enumerate(encoded):
                input_ids[i, : len(e.input_ids)] = e.input_ids
                labels[i, : len(e.labels)] = e.labels
                attention[i, : len(e.input_ids)] = 1
            inputs = {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}
            pixels = [e.pixel_values for e in encoded if len(e.pixel_values)]
            if pixels:
                inputs["pixel_values"] = torch.cat(pixels).to(device=device, dtype=model.dtype)
            logp = torch.log_softmax(model(**inputs).logits.float(), dim=-1)[:, :-1]
            targets = labels[:, 1:].to(device)
            for i in range(len(encoded)):
                # The last answer's tokens, without its closing <|im_end|>.
                positions = (targets[i] != IGNORE_INDEX).nonzero().flatten()
                positions = _last_run(positions)[:-1]
                tokens = targets[i, positions]
                token_logp = logp[i, positions].gather(-1, tokens[:, None])[:, 0]
                best = logp[i, positions].max(dim=-1).values
                out.append(AnswerScores(tokens.tolist(), token_logp.cpu(), (token_logp - best).cpu()))
    finally:
        model.train(was_training)
    return out


def _last_run(positions: torch.Tensor) -> torch.Tensor:
    """The last run of consecutive positions (the final assistant answer of a multi-turn conversation)."""
    if len(positions) == 0:
        return positions
    breaks = (positions[1:] - positions[:-1] != 1).nonzero().flatten()
    return positions[int(breaks[-1]) + 1 :] if len(breaks) else positions
