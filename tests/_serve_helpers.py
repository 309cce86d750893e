"""Helpers for the `sailvl serve` tests: a real uvicorn server on 127.0.0.1 in a thread of the test process,
images as data URLs, and a decompression-bomb PNG."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import threading
import time

from PIL import Image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png(colour, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def bomb_png(side: int = 12000) -> bytes:
    """A `side` x `side` 1-bit PNG (144 MP at 12000): ~18 KB on disk, ~0.5 s to make, 432 MB once decoded
    to RGB."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")
    return buffer.getvalue()


def user(text: str, *images: bytes) -> list[dict]:
    """One user message: the images as data URLs, then the text."""
    parts = [{"type": "image_url", "image_url": {"url": data_url(im)}} for im in images]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@contextlib.contextmanager
def running_server(model, processor, **settings):
    """`sailvl serve`'s app and uvicorn server for `model` on an ephemeral 127.0.0.1 port, in a thread; yields
    (base URL, app, server) and stops it on exit."""
    from sailvl.infer.serve import ServeSettings, build_app, make_server

    app = build_app(model, processor, ServeSettings("tiny", **settings))
    server = make_server(app, "127.0.0.1", free_port())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}", app, server
    finally:
        server.handle_exit(15, None)
        thread.join(timeout=30)
