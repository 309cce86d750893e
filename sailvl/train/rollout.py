"""RL prompts and rollouts: prompts from SFT samples, a resumable prompt sampler, G sampled answers per prompt,
and per-token log-probs of those answers under a model."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from sailvl.config.constants import IMG_CONTEXT, IMG_END, IMG_START
from sailvl.data.bad_records import EMPTY_ANSWER, BadRecordCounter
from sailvl.data.config import DataConfig
from sailvl.data.readers import read_source
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError
from sailvl.infer.generate import generation_kwargs, model_inputs
from sailvl.infer.request import GenRequest

NO_PROMPT = "no_prompt"  # a record whose conversation has no user turn before its last assistant turn


@dataclass
class RlPrompt:
    """One RL prompt: the conversation up to (not including) its last assistant turn, and the gold answer."""

    id: str
    images: list[Any]
    conversation: list[dict]
    gold: str
    sample: Sample = field(repr=False)


def rl_prompt(sample: Sample) -> RlPrompt | str:
    """The RL prompt of an SFT sample, or the reason it has none. Gold: `metadata["answer"]` when present, else
    the last assistant turn's text."""
    turns = sample.conversation
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    prompt = turns[:last] if last is not None else turns
    if not any(t["role"] == "user" for t in prompt):
        return NO_PROMPT
    gold = sample.metadata.get("answer")
    if gold is None and last is not None:
        gold = turns[last]["content"]
    if gold is None or not str(gold).strip():
        return EMPTY_ANSWER
    return RlPrompt(sample.id, list(sample.images), [dict(t) for t in prompt], str(gold), sample)


def read_prompts(data: DataConfig, bad: BadRecordCounter) -> list[RlPrompt]:
    """Every RL prompt of the data's sources, in source order; records without one are counted in `bad`.

    Source weights do not apply: RL prompt sets are small, and each prompt is drawn once per epoch."""
    prompts = []
    for source in data.sources:
        for sample in read_source(source.format, source.path, source.image_root, source.name, bad):
            found = rl_prompt(sample)
            if isinstance(found, str):
                bad.skip(found, sample.id)
            else:
                bad.ok()
                prompts.append(found)
    if not prompts:
        raise SailvlError(f"no RL prompts in {[s.path for s in data.sources]}: every record was skipped")
    return prompts


class PromptSampler:
    """Prompts in a seeded shuffled order, a new order each epoch; rank r of W takes every W-th prompt of the
    shared order. `state_dict` / `load_state_dict` resume it exactly (AppState's `loader`)."""

    def __init__(self, prompts: list[RlPrompt], seed: int, rank: int = 0, world_size: int = 1):
        self.prompts, self.seed, self.rank, self.world_size = prompts, seed, rank, world_size
        self.position = 0  # prompts drawn by all ranks together

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.prompts)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def next_prompts(self, count: int) -> list[RlPrompt]:
        """This rank's next `count` prompts (every rank draws the same count each step)."""
        out = []
        for _ in range(count):
            index = self.position + self.rank
            epoch, offset = divmod(index, len(self.prompts))
            out.append(self.prompts[self._order(epoch)[offset]])
            self.position += self.world_size
        return out

    def state_dict(self) -> dict:
        return {"position": self.position, "prompts": len(self.prompts)}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("prompts", len(self.prompts))) != len(self.prompts):
            raise SailvlError(
                f"the checkpoint's RL prompt set had {state['prompts']} prompts, this one has {len(self.prompts)}"
            )
        self.position = int(state["position"])


@dataclass
class Rollouts:
    """G answers per prompt, rows grouped by prompt (rows g*G .. g*G+G-1 answer prompt g)."""

    prompt_ids: torch.Tensor  # [B, Lp] left-padded
    prompt_mask: torch.Tensor  # [B, Lp]
    pixel_values: torch.Tensor | None  # every row's tiles in row order
    completion_ids: torch.Tensor  # [B, T] right-padded
    completion_mask: torch.Tensor  # [B, T] 1 up to and including the stop token
    texts: list[str]  # decoded answers, special tokens removed
    tiles_per_row: list[int]  # image tiles of each row's prompt (pixel_values holds them in row order)
    banned: list[int]  # token ids the policy may not emit (image markers: they would desync the image slots)


@torch.no_grad()
def sample_rollouts(
    model, processor, prompts: list[RlPrompt], spec, max_tiles: int | None, seed: int, synced: bool
) -> Rollouts:
    """`spec.group_size` sampled answers to each prompt through transformers `generate`, drawn from `seed`
    (the global RNG is left as it was). `synced`: every rank runs the same number of forwards (FSDP, >1 rank).
    """
    requests = [
        GenRequest(p.images, conversation=p.conversation) for p in prompts for _ in range(spec.group_size)
    ]
    inputs = model_inputs(model, processor, requests, max_tiles, msac=False)
    kwargs = generation_kwargs(processor.tokenizer, spec.max_new_tokens, True, spec.temperature)
    # top_k 0: sample from the whole distribution the loss's log-probs describe (no hidden top-50 cut).
    # An answer holding an image-context token would not line up with the images in the loss's forward.
    banned = image_token_ids(processor.tokenizer)
    kwargs.update(top_k=0, top_p=spec.top_p, synced_gpus=synced, suppress_tokens=banned)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(
            devices=[inputs["input_ids"].device] if inputs["input_ids"].is_cuda else []
        ):
            torch.manual_seed(seed)
            output = model.generate(**inputs, **kwargs)
    finally:
        model.train(was_training)
    completion = output[:, inputs["input_ids"].shape[1] :]
    stop = kwargs["eos_token_id"]
    is_stop = completion == stop
    # Keep the stop token (the policy learns to stop); everything after it is padding.
    after_stop = (is_stop.cumsum(1) - is_stop.long()) > 0
    mask = (~after_stop).long()
    texts = processor.tokenizer.batch_decode(
        [row[m.bool()].tolist() for row, m in zip(completion, mask, strict=True)], skip_special_tokens=True
    )
    image_tokens = (inputs["input_ids"] == processor.image_token_id).sum(1)
    tiles = (image_tokens // processor.num_image_tokens).tolist()
    return Rollouts(
        inputs["input_ids"], inputs["attention_mask"], inputs.get("pixel_values"), completion * mask, mask, texts,
        tiles, banned,
    )  # fmt: skip


def image_token_ids(tokenizer) -> list[int]:
    """Ids of the image marker tokens the tokenizer has (`<img>`, `</img>`, `<IMG_CONTEXT>`)."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (IMG_START, IMG_END, IMG_CONTEXT)]
    return sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})


def completion_logps(
    model, rollouts: Rollouts, rows: slice, temperature: float, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs `[b, T]` (fp32) of the completions of `rows` under `model` at the sampling
    `temperature`, and the policy's entropy per completion position (nats) when `with_entropy`."""
    prompt_ids, prompt_mask = rollouts.prompt_ids[rows], rollouts.prompt_mask[rows]
    completion = rollouts.completion_ids[rows]
    attention = torch.cat([prompt_mask, rollouts.completion_mask[rows]], dim=1)
    inputs = {
        "input_ids": torch.cat([prompt_ids, completion], dim=1),
        "attention_mask": attention,
        "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
    }
    if rollouts.pixel_values is not None:
        inputs["pixel_values"] = row_pixels(rollouts, rows)
    width = completion.shape[1]
    # Logits of the last width + 1 positions: position t predicts token t + 1, so the first width of them
    # predict the completion.
    logits = model(**inputs, use_cache=False, logits_to_keep=width + 1).logits[:, :-1].float() / temperature
    if rollouts.banned:  # the distribution the rollouts were sampled from
        banned = torch.tensor(rollouts.banned, device=logits.device)
        logits = logits.index_fill(-1, banned, float("-inf"))
    log_probs = F.log_softmax(logits, dim=-1)
    logps = log_probs.gather(-1, completion.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:  # a logged statistic: no graph through it
        with torch.no_grad():
            detached = log_probs.detach()
            entropy = -torch.special.xlogy(detached.exp(), detached.exp()).sum(-1)
    return logps, entropy


def row_pixels(rollouts: Rollouts, rows: slice) -> torch.Tensor:
    """The tiles of `rows` out of the rollouts' row-ordered pixels."""
    counts = rollouts.tiles_per_row
    start = sum(counts[: rows.start])
    stop = start + sum(counts[rows])
    return rollouts.pixel_values[start:stop]
