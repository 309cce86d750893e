"""`sailvl serve` as a real server on 127.0.0.1: batched concurrent clients answered as if alone, hostile
requests refused while the server keeps answering, `usage`, the API key, streaming, shutdown during a long
generation; then as a subprocess behind the openai client and an eval whose MMVet answers are judged through
it (`--judge openai:tiny@http://127.0.0.1:PORT/v1`)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
from _serve_helpers import bomb_png, data_url, free_port, png, running_server, user
from PIL import Image

from sailvl.data.processor import SailVLProcessor
from sailvl.infer import GenRequest, generate_ids
from sailvl.model import build_model

_png = png


@pytest.fixture(scope="module")
def tiny(tiny_tokenizer):
    """A random-init tiny model and its processor (112 px tiles, one tile per image)."""
    model = build_model("tiny", tokenizer=tiny_tokenizer, seed=0).eval()
    processor = SailVLProcessor(
        tiny_tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1
    )
    return model, processor


@pytest.fixture(scope="module")
def served(tiny):
    """The server with small limits, so hostile requests stay cheap to send."""
    with running_server(*tiny, max_batch=8, batch_window_ms=20, max_body_bytes=1_000_000) as running:
        yield running


def _post(base: str, body, **kwargs) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120, **kwargs)


def _alone(model, processor, messages: list[dict], images: list, max_tokens: int) -> tuple[list[int], int]:
    """The answer ids of one request generated on its own, and its encoded prompt length."""
    conversation = [
        {"role": "user", "content": "<image>\n" * len(images) + messages[0]["content"][-1]["text"]}
    ]
    request = GenRequest(images=images, conversation=conversation)
    ids = generate_ids(model, processor, [request], max_new_tokens=max_tokens)[0]
    prompt = processor.encode_prompts([conversation], [images])["attention_mask"].sum()
    return ids, int(prompt)


def test_concurrent_clients_are_batched_and_answered_as_if_alone(tiny, served):
    """16 clients at once: fewer `generate` calls than requests, and each greedy answer, finish_reason and
    usage equal to the request generated alone (left padding and other rows change nothing)."""
    base, app, _ = served
    model, processor = tiny
    cases = []
    for i in range(16):
        images = [png((15 * i, 90, 200 - 10 * i), size=(40 + 9 * i, 60))] if i % 3 else []
        cases.append((user(f"What is in picture {i}?" + " Be brief." * (i % 4), *images), images, 2 + i % 6))
    before = dict(app.state.batcher.stats)
    with ThreadPoolExecutor(16) as pool:
        replies = list(
            pool.map(lambda c: _post(base, {"model": "tiny", "messages": c[0], "max_tokens": c[2]}), cases)
        )
    stats = app.state.batcher.stats
    assert [r.status_code for r in replies] == [200] * 16
    assert stats["requests"] - before["requests"] == 16
    calls = stats["generate_calls"] - before["generate_calls"]
    assert calls < 16 and stats["largest_batch"] > 1  # measured: 3-4 calls for the 16
    for (messages, images, max_tokens), reply in zip(cases, replies, strict=True):
        decoded = [Image.open(io.BytesIO(im)).convert("RGB") for im in images]
        ids, prompt_tokens = _alone(model, processor, messages, decoded, max_tokens)
        body = reply.json()
        choice = body["choices"][0]
        assert choice["message"]["content"] == processor.tokenizer.decode(ids, skip_special_tokens=True)
        finish = "length" if len(ids) >= max_tokens else "stop"
        assert choice["finish_reason"] == finish
        completion = len(ids) + (finish == "stop")
        assert body["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                                 "total_tokens": prompt_tokens + completion}  # fmt: skip


def test_seeded_sampling_is_reproducible_while_other_requests_are_batched(tiny, served):
    """A seeded sampled request gives the answer it gives alone even when greedy requests arrive with it; other
    seeds give other answers, and none is the greedy one (temperature 2 on an untrained model: near-uniform
    next tokens, so a coincidence over 6 tokens has odds of about 512**-6)."""
    base, _, _ = served
    model, processor = tiny
    messages = user("Tell a story.", png((90, 30, 160)))

    def ask(seed, temperature=2.0):
        body = _body({"messages": messages, "max_tokens": 6, "temperature": temperature, "seed": seed})
        return _post(base, body).json()["choices"][0]["message"]["content"]

    specs = [(3, 2.0), (3, 2.0), (4, 2.0), *[(None, 0.0)] * 5]
    with ThreadPoolExecutor(len(specs)) as pool:
        answers = list(pool.map(lambda spec: ask(*spec), specs))
    image = Image.open(io.BytesIO(png((90, 30, 160)))).convert("RGB")
    torch.manual_seed(3)
    request = GenRequest(images=[image], conversation=[{"role": "user", "content": "<image>\nTell a story."}])
    alone = generate_ids(model, processor, [request], max_new_tokens=6, do_sample=True, temperature=2.0)[0]
    assert answers[0] == answers[1] == processor.tokenizer.decode(alone, skip_special_tokens=True)
    assert answers[2] != answers[0] and answers[4] not in answers[:3]
    assert len(set(answers[3:])) == 1  # greedy


def _hostile(base: str) -> list[tuple[str, dict, int, str]]:
    """(name, request body, expected status, expected message fragment) for each refused request."""
    good = user("What colour?", png((200, 0, 0)))

    def image(url: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]

    return [
        ("bad base64", image("data:image/png;base64,@@not base64@@"), 400, "invalid base64"),
        ("remote url", image("http://example.com/cat.png"), 400, "base64 data URL"),
        ("https url", image("https://127.0.0.1:1/x.png"), 400, "downloads nothing"),
        ("file url", image("file:///etc/passwd"), 400, "reads no files"),
        ("not an image", image(data_url(b"GIF89a but not really an image at all")), 400, "cannot be decoded"),
        ("144 MP png", image(data_url(bomb_png())), 400, "over the limit of 40000000 pixels"),
        ("huge max_tokens", {"messages": good, "max_tokens": 10**9}, 400, "at most 4096"),
        (
            "huge max_completion_tokens",
            {"messages": good, "max_completion_tokens": 5000},
            400,
            "at most 4096",
        ),
        ("zero max_tokens", {"messages": good, "max_tokens": 0}, 400, "at least 1"),
        ("negative temperature", {"messages": good, "temperature": -1}, 400, "temperature must be >= 0"),
        ("unknown role", [{"role": "tool", "content": "x"}], 400, "role must be one of"),
        ("64 images", user("Count.", *[png((i, i, i), size=(8, 8)) for i in range(64)]), 400, "at most 16"),
        ("n > 1", {"messages": good, "n": 3}, 400, "n must be 1"),
        ("stop", {"messages": good, "stop": ["."]}, 400, "stop sequences"),
        ("no messages", {"messages": []}, 400, "must not be empty"),
        ("missing messages", {"model": "tiny"}, 400, "messages: Field required"),
        ("wrong type", {"messages": "hello"}, 400, "messages"),
        ("audio part", [{"role": "user", "content": [{"type": "input_audio"}]}], 400, "type 'input_audio'"),
    ]


def _body(spec) -> dict:
    return {"model": "tiny", **(spec if isinstance(spec, dict) else {"messages": spec})}


def test_hostile_requests_are_refused_and_the_server_keeps_answering(served):
    base, app, _ = served
    for name, spec, status, fragment in _hostile(base):
        reply = _post(base, _body(spec))
        assert reply.status_code == status, (name, reply.text)
        assert fragment in reply.json()["error"]["message"], (name, reply.text)
    # Bodies that are no JSON, or too large: declared by Content-Length, or streamed in chunks without one.
    json_header = {"Content-Type": "application/json"}
    not_json = httpx.post(
        f"{base}/v1/chat/completions", content=b"{not json", headers=json_header, timeout=30
    )
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    big = _body(user("x" * 1_200_000))
    assert _post(base, big).status_code == 413

    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    chunked = httpx.post(f"{base}/v1/chat/completions", content=chunks(), headers=json_header, timeout=30)
    assert chunked.status_code == 413 and "at most 1000000" in chunked.json()["error"]["message"]
    assert app.state.batcher.stats["failed"] == 0  # refused at the door: nothing reached the model
    reply = _post(base, _body({"messages": user("Still there?"), "max_tokens": 3}))
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] is not None


def test_streamed_answer_finish_reason_and_usage_equal_the_plain_answer(served):
    base, _, _ = served
    body = _body({"messages": user("Describe it.", png((0, 120, 0))), "max_tokens": 5})
    plain = _post(base, body).json()
    # The untrained model never says <|im_end|> within 5 tokens: the budget ends it.
    assert plain["choices"][0]["finish_reason"] == "length"
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=stream_body, timeout=120) as reply:
        lines = [line[len("data: ") :] for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == plain["choices"][0]["finish_reason"] and set(finishes[:-1]) == {None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_api_key_is_required_when_set(tiny):
    with running_server(*tiny, api_key="sekret") as (base, _, _):
        body = _body({"messages": user("Hi."), "max_tokens": 2})
        assert _post(base, body).status_code == 401
        assert _post(base, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        refused = httpx.get(f"{base}/v1/models", timeout=30)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
        assert _post(base, body, headers={"Authorization": "Bearer sekret"}).status_code == 200


def test_shutdown_ends_a_long_generation_at_once(tiny):
    """A stop signal while a 100000-token answer generates: the request gets 503 and the server thread ends,
    instead of uvicorn waiting on the generation (its graceful timeout would cut the connection instead)."""
    with running_server(*tiny, max_tokens_limit=100_000) as (base, app, server):
        answers = []
        body = _body({"messages": user("Talk forever."), "max_tokens": 100_000})
        client = threading.Thread(target=lambda: answers.append(_post(base, body)))
        client.start()
        for _ in range(600):  # bounded: until the worker is generating (seconds at most)
            if app.state.batcher.stats["generating"]:
                break
            time.sleep(0.05)
        assert app.state.batcher.stats["generating"] == 1
        server.handle_exit(signal.SIGTERM, None)
        client.join(timeout=60)
        assert answers and answers[0].status_code == 503, answers
        assert "shutting down" in answers[0].json()["error"]["message"]
        with pytest.raises(httpx.HTTPError):
            for _ in range(100):  # the listener closes once the open request is answered
                httpx.get(f"{base}/v1/models", timeout=2)
                time.sleep(0.1)


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
    port = free_port()
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
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == reply.choices[0].finish_reason
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


@pytest.mark.slow
def test_sigterm_stops_the_server_process_during_a_long_generation(tiny_model_dir):
    """A real `sailvl serve` process gets SIGTERM while streaming a 100000-token answer: the stream ends with
    the shutting-down error (the generation stopped at its next token) and the process exits."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-m", "sailvl.cli", "serve", str(tiny_model_dir), "--port", str(port)]
    process = subprocess.Popen(command + ["--max-tokens-limit", "100000"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # bounded: until the model is loaded and the port answers
            try:
                if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        body = _body({"messages": user("Talk forever."), "max_tokens": 100_000, "stream": True})
        events, signalled = [], False
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as reply:
            for line in reply.iter_lines():
                events.append(line)
                if not signalled and '"content": "' in line and '"role"' not in line:  # generation runs
                    process.send_signal(signal.SIGTERM)
                    signalled = True
        assert signalled and any("shutting down" in e for e in events), events[-3:]
        process.wait(timeout=60)  # raises while it still runs
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
