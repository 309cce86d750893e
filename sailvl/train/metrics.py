"""Training metrics on rank 0: JSONL, TensorBoard, optional W&B, rich progress bar; FLOPs and MFU."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# Dense bf16 peak FLOP/s per device (vendor datasheets, no sparsity).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def peak_flops(device: torch.device, override: float | None = None) -> float | None:
    """Peak FLOP/s of one device: `override`, a known GPU by name, else None (MFU then not reported)."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def _cfg(config: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if getattr(config, n, None) is not None:
            return getattr(config, n)
    return default


def flops_per_token(text_config: Any) -> float:
    """Training FLOPs per LLM token from the config: 6 * non-embedding params (attention scores added per token).

    Params per decoder layer: q/o projections 2*D*D, k/v 2*D*(kv_heads*head_dim), MLP 3*D*F (SwiGLU);
    plus the LM head D*V. Attention QK^T and AV add 6 * 2 * D * L_ctx per layer (fwd + bwd), counted by
    the caller through `attention_flops_per_token`.
    """
    d = text_config.hidden_size
    n_layers = text_config.num_hidden_layers
    heads = text_config.num_attention_heads
    kv = _cfg(text_config, "num_key_value_heads", default=heads)
    head_dim = _cfg(text_config, "head_dim", default=d // heads)
    ffn = text_config.intermediate_size
    per_layer = d * heads * head_dim * 2 + 2 * d * kv * head_dim + 3 * d * ffn
    return 6.0 * (n_layers * per_layer + d * text_config.vocab_size)


def attention_flops_per_token(text_config: Any, context: float) -> float:
    """Training FLOPs per token of causal attention over an average `context` tokens (fwd 2 matmuls x 2, x3)."""
    heads = text_config.num_attention_heads
    head_dim = _cfg(text_config, "head_dim", default=text_config.hidden_size // heads)
    return 6.0 * 2.0 * text_config.num_hidden_layers * heads * head_dim * context


def vision_flops_per_tile(vision_config: Any, tile: int = 448) -> float:
    """Training FLOPs per image tile through the ViT: 6 * params-per-patch * patches (+ attention)."""
    d = vision_config.hidden_size
    ffn = vision_config.intermediate_size
    n_layers = vision_config.num_hidden_layers
    patch = vision_config.patch_size
    patch = patch[0] if isinstance(patch, list | tuple) else patch
    size = _cfg(vision_config, "image_size", default=tile)
    size = size[0] if isinstance(size, list | tuple) else size
    patches = (size // patch) ** 2
    per_patch = n_layers * (4 * d * d + 2 * d * ffn) + 2 * n_layers * d * patches
    return 6.0 * per_patch * patches


def step_flops(model_config: Any, tokens: int, tiles: int, context: float) -> float:
    """FLOPs of one training step over `tokens` LLM tokens (incl. pad) and `tiles` image tiles."""
    text = model_config.text_config
    per_tok = flops_per_token(text) + attention_flops_per_token(text, context)
    return tokens * per_tok + tiles * vision_flops_per_tile(model_config.vision_config)


class MetricsLogger:
    """Rank-0 sink for per-step scalars: OUT/metrics.jsonl, TensorBoard under OUT/tb, W&B if enabled."""

    def __init__(self, out_dir: Path, enabled: bool, wandb: bool = False, run_name: str = "sailvl"):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self._jsonl = None
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.out_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tb"))
        except ImportError:
            log.info("tensorboard is not installed; metrics go to metrics.jsonl only")
        if wandb:
            try:
                import wandb as wandb_lib

                self._wandb = wandb_lib.init(project="sailvl", name=run_name, dir=str(self.out_dir))
            except ImportError:
                log.warning("wandb is enabled in the recipe but not installed; skipping W&B logging")

    def log(self, record: dict[str, Any]) -> None:
        """Append one step record (must hold `step`); non-finite floats become null in JSON."""
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self._jsonl.write(json.dumps(clean, sort_keys=True) + "\n")
        self._jsonl.flush()
        step = int(record["step"])
        stage = record.get("stage", "")
        scalars = {k: v for k, v in record.items() if isinstance(v, int | float) and k != "step"}
        if self._tb is not None:
            for k, v in scalars.items():
                if v is not None and math.isfinite(v):
                    self._tb.add_scalar(f"{stage}/{k}" if stage else k, v, step)
        if self._wandb is not None:
            self._wandb.log(
                {f"{stage}/{k}": v for k, v in scalars.items()}, step=record.get("global_step", step)
            )

    def close(self) -> None:
        """Flush and close every sink."""
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class Progress:
    """A rich progress bar over the stage budget (progress in [0, 1]); ETA from the rich column."""

    def __init__(self, enabled: bool, description: str):
        self._bar = None
        if not enabled:
            return
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._task = self._bar.add_task(description, total=1.0, info="")
        self._bar.start()

    def update(self, progress: float, info: str) -> None:
        """Move the bar to `progress` and show `info` (loss, lr)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=min(progress, 1.0), info=info)

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()
