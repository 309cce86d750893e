"""Data config schemas: the sources of a mixture (`SourceConfig`) and packing / loading settings (`DataConfig`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sailvl.config import SailConfig


class SourceConfig(SailConfig):
    """One data source of a mixture."""

    path: str = Field(
        description="File, directory or glob of the source's files (an HF dataset directory for hf_disk)."
    )
    format: Literal["jsonl", "webdataset", "parquet", "hf_disk"] = Field(
        default="jsonl", description="Storage format of the source."
    )
    name: str | None = Field(
        default=None, description="Name used in sample ids and statistics (default: path stem)."
    )
    weight: float | None = Field(
        default=None,
        gt=0,
        description="Relative sampling weight (default 1 when neither weight nor repeat is set).",
    )
    repeat: float | None = Field(
        default=None,
        gt=0,
        description="Times the source is seen per mixture epoch; the weight becomes repeat x number of records.",
    )
    max_tiles: int | None = Field(
        default=None, ge=1, description="Max tiles per image (default: the processor's)."
    )
    task: str | None = Field(
        default=None, description="Optional task tag copied into sample metadata['task']."
    )
    image_root: str | None = Field(
        default=None, description="Directory relative image paths in JSONL are joined to."
    )

    @model_validator(mode="after")
    def _weight_or_repeat(self) -> SourceConfig:
        if self.weight is not None and self.repeat is not None:
            raise ValueError(f"source {self.display_name}: set either weight or repeat, not both")
        return self

    @property
    def display_name(self) -> str:
        """The configured name, else the stem of the path."""
        return self.name or Path(self.path.rstrip("/")).stem


class DataConfig(SailConfig):
    """Mixture, packing and loader settings (token counts are tokenizer tokens, image tokens included)."""

    sources: list[SourceConfig] = Field(min_length=1, description="Sources mixed by weight or repeat count.")
    max_tokens: int = Field(default=16384, ge=16, description="Tokens per packed sequence (row length).")
    max_tiles_per_pack: int = Field(
        default=64, ge=1, description="Cap on image tiles (thumbnails included) per pack."
    )
    packing: bool = Field(
        default=True,
        description="Pack samples into max_tokens rows; False pads each batch to its longest sample.",
    )
    packs_per_batch: int = Field(default=1, ge=1, description="Packed rows per batch when packing.")
    batch_size: int = Field(default=8, ge=1, description="Samples per batch when not packing.")
    pack_buffer: int = Field(
        default=128,
        ge=1,
        description="Samples held for best-fit packing (larger: fuller packs, more memory).",
    )
    long_samples: Literal["truncate", "drop"] = Field(
        default="truncate",
        description="Samples over max_tokens: cut the text (never inside an image span) or drop them as too_long.",
    )
    attention_mask: Literal["bool", "additive", "flex", "none"] = Field(
        default="bool",
        description=(
            "Packed attention mask: 4D bool block-diagonal causal (sdpa), 4D additive float (eager attention adds "
            "the mask to the scores), flex (segment ids -> a flex_attention BlockMask built on the device, which "
            "skips masked blocks; set by the trainer when attn_implementation is flex_attention), or none "
            "(flash-attention varlen reads packed position_ids)."
        ),
    )
    shuffle_block: int = Field(
        default=256,
        ge=0,
        description="Records shuffled within consecutive blocks of this size (0: file order); a block is held in memory.",
    )
    num_workers: int = Field(
        default=2, ge=0, description="DataLoader worker processes per rank (0: in the main process)."
    )
    prefetch_factor: int = Field(default=2, ge=1, description="Batches prefetched per worker.")
    uint8_pixels: bool = Field(
        default=True,
        description=(
            "Tiles cross worker processes as uint8 (4x less shared memory than float32); the trainer normalises "
            "them on the device (sailvl.train.step.to_device), with the same result."
        ),
    )
    pin_memory: bool = Field(
        default=False,
        description="Pinned host batches for non-blocking copies (the trainer turns it on with CUDA).",
    )
    preference_pairs: bool = Field(
        default=False,
        description=(
            "Records are preference pairs (set by the trainer for `objective: dpo`): the chosen (last assistant "
            "turn) and rejected (metadata.rejected) answers become two sequences that are packed, batched and "
            "sharded together; records without a usable rejected answer are skipped as bad records."
        ),
    )
    max_bad_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Abort when more than this fraction of records seen were bad."
    )
    min_records_before_abort: int = Field(
        default=1000, ge=1, description="Records seen (over all workers) before the bad fraction is checked."
    )
