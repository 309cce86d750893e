"""Training metrics on rank 0: JSONL, TensorBoard, optional W&B, rich progress bar; peak FLOP/s for MFU."""

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
