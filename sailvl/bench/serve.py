"""`sailvl bench serve`: requests/s of `sailvl serve` at 1, 8 and 32 concurrent clients, batched (`--max-batch`)
against the same server answering one request per `generate` call (`--max-batch 1`), measured in the same run
on the same requests. Servers run as `sailvl serve` processes on 127.0.0.1; clients are threads here."""

from __future__ import annotations

import base64
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from sailvl.bench.curate import bench_model_dir
from sailvl.errors import SailvlError

# Seconds a server process may take to load the model and answer /v1/models.
_START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bodies(n: int, max_tokens: int, seed: int = 0) -> list[dict]:
    """`n` distinct greedy requests, each with one 224x224 photo-like PNG and a question."""
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(n):
        small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((224, 224), Image.BILINEAR).save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        content = [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": f"What is {i}?"},
        ]
        bodies.append({"model": "bench", "messages": [{"role": "user", "content": content}],
                       "max_tokens": max_tokens, "temperature": 0})  # fmt: skip
    return bodies


class _ServerProcess:
    """`sailvl serve MODEL_DIR --max-batch N` on an ephemeral 127.0.0.1 port, stopped with SIGTERM on exit."""

    def __init__(self, model_dir: Path, max_batch: int, max_tokens: int):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "sailvl.cli", "serve", str(model_dir), "--port", str(self.port),
                "--name", "bench", "--max-batch", str(max_batch), "--max-new-tokens", str(max_tokens)]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> _ServerProcess:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise SailvlError(f"sailvl serve exited while starting: {self.process.stderr.read()[-1000:]}")
            try:
                if httpx.get(f"{self.base}/v1/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SailvlError(f"sailvl serve did not answer within {_START_TIMEOUT_S} s")
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stats(self) -> dict:
        return httpx.get(f"{self.base}/stats", timeout=10).json()


def _time_clients(server: _ServerProcess, bodies: list[dict], clients: int) -> dict[str, Any]:
    """Send every body with `clients` concurrent clients; requests/s, completion tokens/s, generate calls."""
    before = server.stats()

    def send(body: dict) -> dict:
        reply = httpx.post(f"{server.base}/v1/chat/completions", json=body, timeout=600)
        reply.raise_for_status()
        return reply.json()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        replies = list(pool.map(send, bodies))
    seconds = time.perf_counter() - start
    tokens = sum(r["usage"]["completion_tokens"] for r in replies)
    calls = server.stats()["generate_calls"] - before["generate_calls"]
    return {"requests_per_s": len(bodies) / seconds, "completion_tokens_per_s": tokens / seconds,
            "generate_calls": calls, "requests": len(bodies)}  # fmt: skip


def bench_serve(
    clients: list[int] | None = None,
    requests: int = 64,
    max_tokens: int = 16,
    max_batch: int = 8,
    preset: str = "tiny",
    budget_s: float = 600.0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Requests/s at each client count for the batched server and for the serial baseline (`--max-batch 1`), on
    the same `requests` greedy requests (at least 2 per client) of `max_tokens` tokens each. An untrained model
    rarely stops early, so nearly every request generates `max_tokens` tokens. Both servers run side by side
    and are timed `repeats` times, interleaved, so a busy machine slows both alike: medians are reported, with
    the speedup's min / max. A timing that would start after `budget_s` seconds is skipped and listed."""
    clients = sorted(set(clients or [1, 8, 32]))
    if min(clients) < 1 or repeats < 1:
        raise SailvlError(f"client counts and repeats must be at least 1, got {clients} and {repeats}")
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = bench_model_dir(Path(tmp), preset, 8)
        with (
            _ServerProcess(model_dir, max_batch, max_tokens) as batched,
            _ServerProcess(model_dir, 1, max_tokens) as serial,
        ):
            servers = {"batched": batched, "serial": serial}
            for server in servers.values():
                _time_clients(server, _bodies(2, max_tokens, seed=99), 2)  # warm-up, not timed
            for count in clients:
                bodies = _bodies(max(requests, 2 * count), max_tokens)
                runs: dict[str, list[dict]] = {"batched": [], "serial": []}
                for _ in range(repeats):
                    if time.monotonic() - started > budget_s:
                        break
                    for label, server in servers.items():
                        runs[label].append(_time_clients(server, bodies, count))
                if runs["batched"]:
                    rows[str(count)] = _row(runs["batched"], runs["serial"])
                else:
                    skipped.append(f"{count} clients")
    import torch

    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },  # fmt: skip
        "model": {
            "preset": preset,
            "max_tokens": max_tokens,
            "image": "224x224 PNG, one per request",
            "device": "cpu",
        },
        "baseline": "the same `sailvl serve` with --max-batch 1 (one request per generate call), same requests, "
        "same run, timed interleaved with the batched server",
        "max_batch": max_batch,
        "clients": rows,
        "skipped": skipped,
    }


def _row(batched: list[dict], serial: list[dict]) -> dict[str, Any]:
    """Medians over repeats of one client count; the speedup of each repeat's pair, its min and max."""
    speedups = [b["requests_per_s"] / s["requests_per_s"] for b, s in zip(batched, serial, strict=True)]

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    return {
        "requests_per_s": round(median(batched, "requests_per_s"), 2),
        "baseline_requests_per_s": round(median(serial, "requests_per_s"), 2),
        "speedup": round(statistics.median(speedups), 2),
        "speedup_min_max": [round(min(speedups), 2), round(max(speedups), 2)],
        "completion_tokens_per_s": round(median(batched, "completion_tokens_per_s"), 1),
        "baseline_completion_tokens_per_s": round(median(serial, "completion_tokens_per_s"), 1),
        "generate_calls": batched[-1]["generate_calls"],
        "baseline_generate_calls": serial[-1]["generate_calls"],
        "requests": batched[-1]["requests"],
        "repeats": len(batched),
    }
