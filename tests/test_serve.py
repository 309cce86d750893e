"""`sailvl serve` as a real server process on 127.0.0.1: the openai client (plain, streaming, errors) and an
eval whose MMVet answers are judged through it (`--judge openai:tiny@http://127.0.0.1:PORT/v1`)."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from PIL import Image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import build_model, save_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("serve") / "tiny"
    tokenizer = tiny_tokenizer
    save_model(build_model("tiny", tokenizer=tokenizer, seed=0), root)
    SailVLProcessor(
        tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1
    ).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    """`sailvl serve` in a subprocess; yields its base URL once /v1/models answers."""
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-m", "sailvl.cli", "serve", str(tiny_model_dir), "--port", str(port)]
    process = subprocess.Popen(command + ["--name", "tiny"], env=env, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sailvl serve exited: {process.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_openai_messages_become_a_sailvl_conversation():
    from sailvl.errors import SailvlError
    from sailvl.infer.serve import ChatMessage, to_conversation

    url = "data:image/png;base64," + base64.b64encode(_png((0, 0, 200))).decode()
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(
            role="user",
            content=[
                {"type": "text", "text": "Compare "},
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "image_url", "image_url": url},
                {"type": "text", "text": "please."},
            ],
        ),
    ]
    conversation, images = to_conversation(messages)
    assert conversation == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Compare <image>\n<image>\nplease."},
    ]
    assert len(images) == 2 and images[0].getpixel((0, 0)) == (0, 0, 200)
    with pytest.raises(SailvlError, match="type 'audio'"):
        to_conversation([ChatMessage(role="user", content=[{"type": "audio"}])])
    with pytest.raises(SailvlError, match="role must be one of"):
        to_conversation([ChatMessage(role="tool", content="x")])
    with pytest.raises(SailvlError, match="cannot be decoded"):
        to_conversation(
            [
                ChatMessage(
                    role="user",
                    content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                )
            ]
        )


@pytest.mark.slow
def test_openai_client_plain_streaming_and_errors(server):
    import openai

    client = openai.OpenAI(api_key="unused", base_url=server)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    url = "data:image/png;base64," + base64.b64encode(_png((200, 0, 0))).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "What colour?"},
            ],
        }
    ]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0)
    text = reply.choices[0].message.content
    assert reply.object == "chat.completion" and reply.choices[0].finish_reason in ("stop", "length")
    assert isinstance(text, str)
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text  # greedy: same answer
    # Sampled replies are reproducible with a seed.
    sampled = [
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=1.0, seed=3)
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]
    bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]
    with pytest.raises(openai.BadRequestError, match="base64 data URL"):
        client.chat.completions.create(model="tiny", messages=bad)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be at least 1"):
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=0, stream=True)
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="tiny", messages=messages, n=2)


@pytest.mark.slow
def test_eval_judges_mmvet_through_the_server(server, tiny_model_dir, tmp_path):
    from sailvl.cli import main
    from sailvl.eval.tsv import write_benchmark

    rows = [
        {"index": i, "image": _png((40 * i, 0, 0)), "question": f"What is shown in picture {i}?",
         "answer": "red <OR> a red square", "category": "rec" if i % 2 else "rec,ocr"}
        for i in range(3)
    ]  # fmt: skip
    write_benchmark(tmp_path / "MMVet.tsv", rows)
    out = tmp_path / "eval"
    judge = f"openai:tiny@{server}"
    args = ["eval", "--model", str(tiny_model_dir), "--bench", "MMVet", "--data-dir", str(tmp_path)]
    main(args + ["--out", str(out), "--judge", judge, "--max-new-tokens", "8"])
    results = json.loads((out / "results.json").read_text())
    mmvet = results["benchmarks"]["MMVet"]
    assert results["judge"] == judge and mmvet["status"] == "scored" and mmvet["n"] == 3
    judged = [
        json.loads(line)["value"] for line in (out / "MMVet" / "judgements.jsonl").read_text().splitlines()
    ]
    assert len(judged) == 3
    # Each answer was judged through the server; an untrained judge rarely replies a bare number in
    # [0, 1], so the score is whatever VLMEvalKit's 5 retries give, and the counts must agree with it.
    failed = [r for r in judged if r["failed"]]
    assert mmvet["extraction_failed"] == len(failed) and mmvet["judged"] == 3
    assert all(r["log"].count("Try ") == 5 for r in failed)
    assert mmvet["score"] == pytest.approx(100.0 * sum(r["score"] for r in judged) / 3, abs=1e-3)
    assert set(mmvet["per_capability"]) == {"rec", "ocr"}


@pytest.mark.slow
def test_local_judge_dir_gives_the_judgements_of_the_same_model_served(server, tiny_model_dir, tmp_path):
    """`--judge DIR` and `--judge openai:...` over `sailvl serve DIR` are one model: greedy first tries and
    seeded sampled retries must agree reply for reply."""
    from sailvl.cli import main
    from sailvl.eval.tsv import write_benchmark

    rows = [
        {"index": i, "image": _png((0, 60 * i, 0)), "question": f"Name {i}?", "answer": "green"}
        for i in range(2)
    ]
    write_benchmark(tmp_path / "MMVet.tsv", rows)
    args = ["eval", "--model", str(tiny_model_dir), "--bench", "MMVet", "--data-dir", str(tmp_path)]
    args += ["--max-new-tokens", "4"]
    judgements = []
    for name, judge in (("remote", f"openai:tiny@{server}"), ("local", str(tiny_model_dir))):
        main(args + ["--out", str(tmp_path / name), "--judge", judge])
        lines = (tmp_path / name / "MMVet" / "judgements.jsonl").read_text().splitlines()
        records = [json.loads(line)["value"] for line in lines]
        assert {r.pop("judge") for r in records} == {judge}
        judgements.append(records)
    assert judgements[0] == judgements[1]
    assert json.loads((tmp_path / "local" / "results.json").read_text())["judge"] == str(tiny_model_dir)
