"""Soak: 120 requests from 12 concurrent clients against one `sailvl serve` on 127.0.0.1, a third of them
malformed or hostile; every good request is answered, every bad one refused, and the server is still up."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from _serve_helpers import bomb_png, data_url, png, running_server, user

from sailvl.data.processor import SailVLProcessor
from sailvl.model import build_model

REQUESTS = 120
CLIENTS = 12


def _image_message(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


def _bad_requests() -> list[tuple[str, dict | bytes]]:
    """(name, JSON body or raw bytes) of requests the server must refuse with a 4xx. Each asks for 2 tokens
    unless max_tokens is its fault, so one let through is answered quickly (and fails the test) instead of
    generating the server's default 512."""
    good = user("Colour?", png((0, 0, 255)))
    bad = [
        ("bad base64", {"messages": _image_message("data:image/png;base64,%%%")}),
        ("remote url", {"messages": _image_message("https://example.com/a.png")}),
        ("file url", {"messages": _image_message("file:///etc/hostname")}),
        ("not an image", {"messages": _image_message(data_url(b"\x89PNG\r\n\x1a\n garbage"))}),
        ("144 MP png", {"messages": _image_message(data_url(bomb_png()))}),
        ("max_tokens 10**9", {"messages": good, "max_tokens": 10**9}),
        ("unknown role", {"messages": [{"role": "developer", "content": "x"}]}),
        ("20 images", {"messages": user("Count.", *[png((i, 0, 0), size=(8, 8)) for i in range(20)])}),
        ("n 2", {"messages": good, "n": 2}),
        ("oversized body", {"messages": user("y" * 400_000)}),
        ("invalid json", b'{"model": "tiny", "messages": ['),
        ("messages not a list", {"messages": {"role": "user"}}),
    ]
    return [(name, {"max_tokens": 2, **body} if isinstance(body, dict) else body) for name, body in bad]


def _good_request(rng: random.Random, index: int) -> dict:
    images = [png((rng.randrange(256), 80, 40), size=(rng.randrange(32, 160), 48))] if index % 2 else []
    body = {"messages": user(f"Request {index}: what is shown?", *images), "max_tokens": rng.randrange(1, 5)}
    if index % 10 == 0:
        body.update(stream=True, stream_options={"include_usage": True})
    if index % 15 == 1:
        body.update(temperature=1.5, seed=index)
    return body


def _send(base: str, body: dict | bytes) -> tuple[int, dict]:
    """Status and JSON reply; a stream is read to the end and summarised as its last usage chunk."""
    url = f"{base}/v1/chat/completions"
    if isinstance(body, bytes):
        reply = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=120)
        return reply.status_code, reply.json()
    body = {"model": "tiny", **body}
    if not body.get("stream"):
        reply = httpx.post(url, json=body, timeout=120)
        return reply.status_code, reply.json()
    with httpx.stream("POST", url, json=body, timeout=120) as reply:
        if reply.status_code != 200:
            reply.read()
            return reply.status_code, reply.json()
        lines = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return reply.status_code, json.loads(lines[-2])


@pytest.mark.slow
def test_soak_good_answered_bad_refused_server_up(tiny_tokenizer):
    model = build_model("tiny", tokenizer=tiny_tokenizer, seed=0).eval()
    processor = SailVLProcessor(
        tiny_tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1
    )
    rng = random.Random(0)
    bad = _bad_requests()
    plan = []
    for index in range(REQUESTS):
        if index % 3 == 2:
            plan.append(("bad",) + bad[(index // 3) % len(bad)])
        else:
            plan.append(("good", f"good {index}", _good_request(rng, index)))
    rng.shuffle(plan)
    with running_server(model, processor, max_batch=8, max_body_bytes=300_000) as (base, app, _):
        with ThreadPoolExecutor(CLIENTS) as pool:
            replies = list(pool.map(lambda item: _send(base, item[2]), plan))
        alive = httpx.get(f"{base}/v1/models", timeout=30)
        stats = dict(app.state.batcher.stats)
    goods = 0
    for (kind, name, _), (status, reply) in zip(plan, replies, strict=True):
        if kind == "good":
            goods += 1
            assert status == 200, (name, reply)
            assert reply["usage"]["completion_tokens"] >= 1 and reply["usage"]["prompt_tokens"] > 0, name
        else:
            assert 400 <= status < 500, (name, status, reply)
            assert reply["error"]["message"], name
    assert goods == 80  # 2 of every 3 of the 120
    assert alive.status_code == 200 and alive.json()["data"][0]["id"] == "tiny"
    # Every good request went through the model, no bad one did, and batching happened under this load.
    assert stats["requests"] == goods and stats["failed"] == 0
    assert stats["generate_calls"] < goods
