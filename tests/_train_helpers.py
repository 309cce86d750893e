"""Test helpers for the training engine: synthetic batches in the loader's format and a fake loader."""

from __future__ import annotations

import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sailvl.config.constants import IGNORE_INDEX

IMAGE_TOKEN_ID = 5  # the tiny preset's <IMG_CONTEXT> without a tokenizer
TOKENS_PER_TILE = 16  # 112 px tiles, patch 14, pixel-shuffle 0.5


def make_batch(seed: int, length: int = 64, vocab: int = 512, tiles: int = 1) -> dict:
    """One packed row holding one sample: text, `tiles` image spans, and answer labels on the tail."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(20, vocab, (length,), generator=g)
    ids[4 : 4 + TOKENS_PER_TILE * tiles] = IMAGE_TOKEN_ID
    labels = torch.full((length,), IGNORE_INDEX)
    answer_start = 4 + TOKENS_PER_TILE * tiles + 8
    labels[answer_start:] = ids[answer_start:]
    # The answer is a function of the image colour, so the model can learn something real.
    colour = int(torch.randint(0, 3, (1,), generator=g))
    pixels = torch.zeros(tiles, 3, 112, 112)
    pixels[:, colour] = 1.0
    ids[answer_start:] = 100 + colour
    labels[answer_start:] = 100 + colour
    return {
        "input_ids": ids[None],
        "labels": labels[None],
        "position_ids": torch.arange(length)[None],
        "attention_mask": torch.ones(1, length, dtype=torch.long),
        "pixel_values": pixels,
        "num_target_tokens": int((labels[1:] != IGNORE_INDEX).sum()),
        "sample_ids": [f"s{seed}"],
        "sample_lengths": [length],
        "num_real_tokens": length,
    }


def make_packed_batch(seed: int, **kwargs) -> dict:
    """`make_batch` with the packed collate's 4D block-causal mask (what the trainer feeds sdpa on CPU)."""
    from sailvl.data.collate import block_causal_mask

    batch = make_batch(seed, **kwargs)
    batch["attention_mask"] = block_causal_mask(torch.zeros_like(batch["input_ids"]))
    return batch


class FakeLoader:
    """Deterministic stream of make_batch batches, sharded round-robin over ranks, with exact resume state."""

    def __init__(self, rank: int = 0, world_size: int = 1, seed: int = 0):
        self.rank, self.world_size, self.seed, self.position = rank, world_size, seed, 0

    def __iter__(self):
        while True:
            index = self.position * self.world_size + self.rank
            self.position += 1
            yield make_batch(self.seed * 100003 + index)

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


# Ops whose result the host must read: each one blocks the host until the GPU has caught up on CUDA.
_HOST_READ_OPS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"}
# transformers' InternVL checks the image-token count on the host in every forward with images (an eager
# f-string and a torch._check on a tensor): upstream code the step cannot avoid while the model owns the scatter.
UPSTREAM_READS = ("get_placeholder_mask",)


class HostReads(TorchDispatchMode):
    """Records every read of a tensor value on the host while active (the host syncs of a CUDA run).

    On CPU no read blocks, so this is how a CPU test sees the syncs a GPU run would have: `.item()`, `bool()`,
    `int()`, `float()` (all `_local_scalar_dense`), boolean-mask indexing and `nonzero` (data-dependent output
    sizes), `.tolist()` and `.cpu()`. `.numpy()` is not counted: it refuses device tensors, so what it reads
    was host memory to begin with. `reads`: (what, innermost frames) per read; `own_reads` leaves out
    `UPSTREAM_READS`.
    """

    def __init__(self):
        super().__init__()
        self.reads: list[tuple[str, list[str]]] = []
        self._patched = {}

    def _record(self, what: str) -> None:
        self.reads.append((what, [f.name for f in traceback.extract_stack()[:-2]]))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        indices = args[1] if str(func).startswith("aten.index") and len(args) > 1 else ()
        if str(func) in _HOST_READ_OPS or any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()
        ):
            self._record(str(func))
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for name in ("tolist", "cpu"):
            original = self._patched[name] = getattr(torch.Tensor, name)

            def counted(tensor, *a, _name=name, _original=original, **k):
                self._record(f"Tensor.{_name}")
                return _original(tensor, *a, **k)

            setattr(torch.Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)

    @property
    def own_reads(self) -> list[tuple[str, list[str]]]:
        return [(what, stack) for what, stack in self.reads if not set(UPSTREAM_READS) & set(stack)]
