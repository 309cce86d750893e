"""`sailvl serve MODEL_DIR`: an OpenAI-compatible chat-completions server over a sailvl model, and
`sailvl bench serve`: its requests/s with batching against one request at a time."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sailvl.cli.app import app, bench_app


@app.command("serve")
def serve_command(
    model: Path = typer.Argument(..., help="Model directory (weights, config, tokenizer, processor)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes it)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    name: str = typer.Option(
        None, "--name", help="Model name reported by /v1/models (default: the dir name)."
    ),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    max_new_tokens: int = typer.Option(
        512, "--max-new-tokens", help="Generation budget when a request sets no max_tokens."
    ),
    max_tiles: int = typer.Option(
        None, "--max-tiles", help="Max tiles per image (default: the processor's)."
    ),
    msac: bool = typer.Option(False, "--msac", help="MSAC second tiling pass (SAIL-VL 1.5+ inference)."),
    max_batch: int = typer.Option(8, "--max-batch", help="Requests per batched generate call (1: serial)."),
    batch_window_ms: float = typer.Option(
        5.0, "--batch-window-ms", help="How long the first waiting request waits for others to batch with."
    ),
    max_tokens_limit: int = typer.Option(
        4096, "--max-tokens-limit", help="Largest max_tokens a request may ask for (more: 400)."
    ),
    max_images: int = typer.Option(16, "--max-images", help="Images per request (more: 400)."),
    max_pixels: int = typer.Option(
        40_000_000, "--max-pixels", help="Pixels per image, read from its header before decoding (more: 400)."
    ),
    max_body_bytes: int = typer.Option(
        32 * 2**20, "--max-body-bytes", help="Request body size (more: 413, the body is not read)."
    ),
    api_key: str = typer.Option(
        None, "--api-key", help="Require `Authorization: Bearer KEY` on every request (else 401)."
    ),
) -> None:
    """Serve /v1/models and /v1/chat/completions (base64 image_url parts, SSE streaming, batched concurrent
    requests) until Ctrl-C or SIGTERM."""
    from sailvl.infer.serve import ServeSettings, serve

    settings = ServeSettings(
        name or model.name, max_new_tokens, max_tiles, msac, max_batch, batch_window_ms, max_tokens_limit,
        max_images, max_pixels, max_body_bytes, api_key,
    )  # fmt: skip
    typer.echo(f"serving {model} on http://{host}:{port}/v1")
    serve(model, host, port, device, settings)


@bench_app.command("serve")
def bench_serve_command(
    clients: list[int] = typer.Option(
        [1, 8, 32], "--clients", help="Concurrent client counts to time; repeatable."
    ),
    requests: int = typer.Option(64, "--requests", min=1, help="Requests per timing (split across clients)."),
    max_tokens: int = typer.Option(16, "--max-tokens", min=1, help="max_tokens of every request."),
    max_batch: int = typer.Option(8, "--max-batch", min=2, help="The batched server's --max-batch."),
    preset: str = typer.Option("tiny", "--preset", help="Random-init model preset."),
    budget_s: float = typer.Option(
        600.0, "--budget-s", help="Seconds for the whole run; timings that no longer fit are skipped."
    ),
    repeats: int = typer.Option(
        3, "--repeats", min=1, help="Interleaved timings per client count (medians)."
    ),
) -> None:
    """Requests/s of `sailvl serve` at each client count, batched vs serial (--max-batch 1), in one run (JSON)."""
    from sailvl.bench.serve import bench_serve

    typer.echo(
        json.dumps(bench_serve(clients, requests, max_tokens, max_batch, preset, budget_s, repeats), indent=1)
    )
