"""`sailvl bench gpu`: the GPU figures of BENCHMARKS.md in one command.

Each benchmark runs as its own `sailvl bench ...` process with a time limit (an out-of-memory or a crash loses that
benchmark only), in priority order, inside one overall time budget: a benchmark that no longer fits is skipped and
said so. The results land in few files (`summary.json` with every benchmark's JSON, `summary.md` with the table
rows, `logs.txt`, `top_kernels.txt`), rewritten after every benchmark, so a lent machine that returns only a
handful of files returns all of them, even when the call is cut short.
The `smoke` plan runs the same commands on the tiny presets on CPU (the plumbing, tested in CI).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sailvl.errors import SailvlError


@dataclass(frozen=True)
class Benchmark:
    """One `sailvl` command line (`{tmp}` is a scratch directory) with its time limit; `needs` names the optional
    modules it imports (skipped, with the reason, where one is missing); `figures` the result keys summarised."""

    name: str
    command: str
    timeout_s: int
    figures: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    def args(self, tmp: str) -> list[str]:
        return shlex.split(self.command.replace("{tmp}", tmp))


_TRAIN = (
    "sailvl_flex_attention_mfu", "sailvl_flex_attention_tokens_per_s", "sailvl_flex_attention_samples_per_s",
    "ratio", "ratio_spread", "max_memory_gib", "switches",
)  # fmt: skip
_AB = ("ab_foreach_grad_clip", "ab_host_sync_every_step", "ab_compile_block_mask")
_CURATE = ("steps", "model")
_DATA = ("packed", "loader_over_gpu", "ranks", "num_workers")
_EXPLAIN = ("device", "liger", "decoder_block_sdpa", "decoder_block_flex", "vit_block", "block_mask")
# One work dir for every train benchmark: the 448 px synthetic world is generated once, not per process.
_TRAIN_2B = "bench train --preset sailvl-2b --attn flex_attention --work-dir {tmp}/train"
# 32 records, 32-token recaptions: the one-record-at-a-time baseline of a 2B model has to fit the time limit too.
_CURATE_2B = "bench curate --model-steps --preset sailvl-2b --records 32 --batch-size 16 --max-new-tokens 32"

# Priority order: the MFU headline with its kernel table, the kernels that should lift it, the second shape, the
# pre-#17 setup, curation model steps, the loader on the realistic mix and what the GPU consumes of that mix, the
# per-switch A/B, then the graph breaks with Liger's kernels (CUDA only). An estimated 17 minutes in all on an
# H200 (not timed): a 9-minute budget covers the first three or four (`--only` the rest).
PLANS: dict[str, list[Benchmark]] = {
    "gpu": [
        Benchmark(
            "train-sailvl-2b", f"{_TRAIN_2B} --repeats 3 --profile {{tmp}}/profile --json", 330, _TRAIN
        ),
        Benchmark(
            "train-sailvl-2b-liger-compile",
            f"{_TRAIN_2B} --repeats 1 --switch liger_kernels=true --compile --json",
            300,
            _TRAIN,
            needs=("liger_kernel",),
        ),
        Benchmark(
            "train-sailvl2-2b",
            "bench train --preset sailvl2-2b --attn flex_attention --work-dir {tmp}/train --repeats 1 --json",
            240,
            _TRAIN,
        ),
        Benchmark(  # the pre-#17 setup (autocast over fp32 weights), for the MFU before and after
            "train-sailvl-2b-autocast",
            f"{_TRAIN_2B} --repeats 1 --switch fsdp_one_device=false --json",
            240,
            _TRAIN,
        ),
        Benchmark(
            "curate-transformers", f"{_CURATE_2B} --backend transformers --repeats 1 --json", 300, _CURATE
        ),
        Benchmark(
            "curate-vllm", f"{_CURATE_2B} --backend vllm --repeats 1 --json", 300, _CURATE, needs=("vllm",)
        ),
        Benchmark("data-8-workers", "bench data --workers 8 --batches 64 --ranks 8 --json", 180, _DATA),
        Benchmark(  # what the GPU consumes of the mix data-8-workers times: the loader's ratio, same data
            "train-sailvl-2b-realistic",
            f"{_TRAIN_2B} --mix realistic --workers 8 --repeats 1 --json",
            300,
            (*_TRAIN, "sailvl_flex_attention_tiles_per_s", "sailvl_flex_attention_load_s", "mix"),
        ),
        Benchmark(
            "train-sailvl-2b-ab",
            f"{_TRAIN_2B} --repeats 1 --ab foreach_grad_clip --ab host_sync_every_step --ab compile_block_mask "
            "--json",
            300,
            (*_TRAIN, *_AB),
        ),
        Benchmark(
            "explain-sailvl2-2b-liger",
            "bench train --preset sailvl2-2b --explain --switch liger_kernels=true --json",
            120,
            _EXPLAIN,
            needs=("liger_kernel",),
        ),
    ],
    "smoke": [
        Benchmark(
            "train-tiny",
            "bench train --preset tiny --steps 2 --repeats 1 --profile {tmp}/profile --json",
            300,
            ("ratio", "sailvl_tokens_per_s", "switches"),
        ),
        Benchmark(
            "curate-tiny",
            "bench curate --model-steps --records 4 --batch-size 2 --max-new-tokens 4 --repeats 1 --json",
            300,
            _CURATE,
        ),
        Benchmark("explain-tiny", "bench train --preset tiny --explain --json", 120, _EXPLAIN),
        Benchmark("needs-a-missing-module", "bench train --json", 60, needs=("no_such_module_xyz",)),
    ],
}
# Below this many seconds of budget a benchmark is not started (a model build alone takes longer).
MIN_START_S = 45


def _missing(needs: tuple[str, ...]) -> list[str]:
    return [name for name in needs if importlib.util.find_spec(name) is None]


def _figures(result: dict, names: tuple[str, ...]) -> dict:
    return {name: _compact(result[name]) for name in names if name in result}


def _compact(value):
    """Numbers, flags and short names of a result, without its prose (the full result stays in summary.json)."""
    if isinstance(value, dict):
        kept = {k: _compact(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(value, str):
        return value if len(value) <= 40 else None
    return value


def run_plan(plan: str, out_dir: str | Path, budget_s: float = 480.0, only: list[str] | None = None) -> dict:
    """Run the benchmarks of `plan` (or the named `only` ones) in order within `budget_s` seconds; write
    `summary.json`, `summary.md`, `logs.txt` (and `top_kernels.txt` when a benchmark profiled) to `out_dir`."""
    if plan not in PLANS:
        raise SailvlError(f"unknown bench plan {plan!r}; plans: {', '.join(PLANS)}")
    benchmarks = PLANS[plan]
    if only:
        unknown = sorted(set(only) - {b.name for b in benchmarks})
        if unknown:
            names = ", ".join(b.name for b in benchmarks)
            raise SailvlError(f"plan {plan!r} has no benchmark {unknown[0]!r}; it has: {names}")
        benchmarks = [b for b in benchmarks if b.name in only]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, logs = [], []
    summary = _write(out_dir, plan, budget_s, 0.0, rows, logs)
    with tempfile.TemporaryDirectory() as tmp:
        for bench in benchmarks:
            left = budget_s - (time.perf_counter() - start)
            row = {"name": bench.name, "command": f"sailvl {bench.command}"}
            missing = _missing(bench.needs)
            if missing:
                row.update(status="skipped", reason=f"{', '.join(missing)} not installed")
            elif left < MIN_START_S:
                row.update(status="skipped", reason=f"budget: {left:.0f} s left")
            else:
                row.update(_run_one(bench, tmp, min(bench.timeout_s, left), logs))
            rows.append(row)
            # Written after every benchmark: a caller killed mid-plan still has what finished.
            summary = _write(out_dir, plan, budget_s, time.perf_counter() - start, rows, logs)
            top = Path(tmp) / "profile" / "top_kernels.txt"
            if top.is_file():
                (out_dir / "top_kernels.txt").write_text(top.read_text())
    return summary


def _write(
    out_dir: Path, plan: str, budget_s: float, seconds: float, rows: list[dict], logs: list[str]
) -> dict:
    summary = {"plan": plan, "budget_s": budget_s, "seconds": round(seconds, 1), "benchmarks": rows}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out_dir / "summary.md").write_text(summary_markdown(rows))
    (out_dir / "logs.txt").write_text("\n".join(logs))
    return summary


def _run_one(bench: Benchmark, tmp: str, timeout: float, logs: list[str]) -> dict:
    command = [sys.executable, "-m", "sailvl.cli", *bench.args(tmp)]
    began = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        logs.append(f"== {bench.name}: timed out after {timeout:.0f} s\n{_text(exc.stderr)[-4000:]}")
        return {"status": "timeout", "seconds": round(timeout, 1)}
    seconds = round(time.perf_counter() - began, 1)
    logs.append(f"== {bench.name}: exit {proc.returncode}, {seconds} s\n{proc.stderr[-4000:]}")
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {
            "status": "failed",
            "seconds": seconds,
            "reason": lines[-1] if lines else f"exit {proc.returncode}",
        }
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        return {"status": "failed", "seconds": seconds, "reason": "no JSON on stdout"}
    return {"status": "ok", "seconds": seconds, "figures": _figures(result, bench.figures), "result": result}


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def summary_markdown(rows: list[dict]) -> str:
    """One table row per benchmark: status, seconds and its key figures (for BENCHMARKS.md)."""
    lines = ["| benchmark | status | s | figures |", "|---|---|---|---|"]
    for row in rows:
        if row["status"] == "ok":
            detail = "; ".join(
                f"{k}: {json.dumps(v, separators=(',', ':'))}" for k, v in row["figures"].items()
            )
        else:
            detail = row.get("reason", "")
        lines.append(f"| {row['name']} | {row['status']} | {row.get('seconds', '')} | {detail} |")
    commands = [f"- {row['name']}: `{row['command']}`" for row in rows]
    return "\n".join([*lines, "", "Commands:", *commands]) + "\n"
