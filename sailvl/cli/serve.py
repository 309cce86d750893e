"""`sailvl serve MODEL_DIR`: an OpenAI-compatible chat-completions server over a sailvl model."""

from __future__ import annotations

from pathlib import Path

import typer

from sailvl.cli.app import app


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
) -> None:
    """Serve /v1/models and /v1/chat/completions (base64 image_url parts, SSE streaming) until Ctrl-C."""
    from sailvl.infer.serve import serve

    typer.echo(f"serving {model} on http://{host}:{port}/v1")
    serve(model, host, port, name, device, max_new_tokens, max_tiles, msac)
