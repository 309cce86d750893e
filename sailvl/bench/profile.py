"""`sailvl bench train --profile DIR`: a torch.profiler trace (chrome format) of a few sailvl steps and a table of
the operators / kernels that took the most time."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch


def profile_steps(step: Callable[[], None], steps: int, out_dir: str | Path, device: torch.device) -> dict:
    """Run `step` `steps` times under torch.profiler; write `trace.json` (chrome://tracing, Perfetto) and
    `top_kernels.txt` to `out_dir`; return the top 15 by self time (device time on CUDA, else CPU), in ms."""
    from torch.profiler import ProfilerActivity, profile

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    prof.export_chrome_trace(str(out_dir / "trace.json"))
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    averages = prof.key_averages()
    (out_dir / "top_kernels.txt").write_text(averages.table(sort_by=key, row_limit=30))
    rows = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:15]
    top = [{"name": e.key, "calls": e.count, "self_ms": round(getattr(e, key) / 1000.0, 3)} for e in rows]
    total = sum(getattr(e, key) for e in averages) / 1000.0
    report = {
        "steps": steps,
        "trace": str(out_dir / "trace.json"),
        "self_ms_total": round(total, 3),
        "top": top,
    }
    (out_dir / "top_kernels.json").write_text(json.dumps(report, indent=1))
    return report
