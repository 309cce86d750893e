"""OpenAI-compatible chat-completions server over sailvl generation (`sailvl serve`): `/v1/models` and
`/v1/chat/completions` with base64 `image_url` parts, SSE streaming, `usage`, request limits, an optional API
key, and concurrent requests batched into shared `generate` calls."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from transformers import TextStreamer

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.data.images import load_image
from sailvl.data.processor import SailVLProcessor
from sailvl.data.template import ROLES
from sailvl.errors import SailvlError
from sailvl.infer.batcher import Batcher, Completion, Decoding, Job, ShuttingDown
from sailvl.infer.request import GenRequest
from sailvl.infer.serve_gate import RequestGate, error_body
from sailvl.model import load_model


class ChatMessage(BaseModel):
    """One OpenAI message: `content` is a string or a list of `text` / `image_url` parts."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict] | None = None


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`: `include_usage` adds a last chunk holding `usage`."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request sailvl honours; other fields are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    stop: str | list[str] | None = None


@dataclass
class ServeSettings:
    """Server settings. Defaults: `model_name` reported to clients, `max_new_tokens` when a request gives none,
    `max_tiles` per image (None: the processor's), `msac` (second tiling pass). Batching: up to `max_batch`
    requests arriving within `batch_window_ms` share a `generate` call. Limits (a request over one is refused
    with 400, a body over `max_body_bytes` with 413): `max_tokens_limit` (tokens), `max_images` per request,
    `max_pixels` per image (width x height, read from the header before decoding). `api_key`: required as
    `Authorization: Bearer KEY` when set."""

    model_name: str
    max_new_tokens: int = 512
    max_tiles: int | None = None
    msac: bool = False
    max_batch: int = 8
    batch_window_ms: float = 5.0
    max_tokens_limit: int = 4096
    max_images: int = 16
    max_pixels: int = 40_000_000  # the sail_caption pipeline's image_checks limit: 40 MP phone photos pass
    max_body_bytes: int = 32 * 2**20
    api_key: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_batch", "max_tokens_limit", "max_images", "max_pixels"):
            if getattr(self, name) < 1:
                raise SailvlError(f"serve setting {name} must be at least 1, got {getattr(self, name)}")
        if self.max_new_tokens > self.max_tokens_limit:
            raise SailvlError(
                f"--max-new-tokens {self.max_new_tokens} is over --max-tokens-limit {self.max_tokens_limit}"
            )
        if self.api_key == "":
            raise SailvlError("--api-key must not be empty")


def decode_image_url(url: str, max_pixels: int | None = None):
    """An RGB image from a `data:image/...;base64,...` URL. Remote (http, https) and file URLs are refused: the
    server neither downloads nor reads its own disk. An image over `max_pixels` is refused undecoded."""
    if not url.startswith("data:"):
        raise SailvlError(
            f"image_url must be a base64 data URL (data:image/png;base64,...), got {url[:40]!r}: "
            "the server downloads nothing and reads no files"
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise SailvlError("image_url data URLs must be base64-encoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as err:
        raise SailvlError(f"image_url holds invalid base64: {err}") from err
    return load_image(data, max_pixels=max_pixels)


def to_conversation(
    messages: list[ChatMessage], max_images: int | None = None, max_pixels: int | None = None
) -> tuple[list[dict], list]:
    """OpenAI messages -> (sailvl conversation with `<image>` placeholders where the images were, images).
    Everything is checked (roles, part types, at most `max_images`) before the first image is decoded."""
    conversation, urls = [], []
    for index, message in enumerate(messages):
        if message.role not in ROLES:
            raise SailvlError(
                f"messages[{index}].role must be one of {', '.join(ROLES)}, got {message.role!r}"
            )
        content = message.content or ""
        if isinstance(content, list):
            pieces = []
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    pieces.append(str(part.get("text", "")))
                elif kind == "image_url":
                    ref = part.get("image_url")
                    urls.append(ref.get("url", "") if isinstance(ref, dict) else str(ref or ""))
                    pieces.append(f"{IMAGE_PLACEHOLDER}\n")
                else:
                    raise SailvlError(
                        f"messages[{index}] has a content part of type {kind!r}; expected text or image_url"
                    )
            content = "".join(pieces)
        conversation.append({"role": message.role, "content": content})
    if max_images is not None and len(urls) > max_images:
        raise SailvlError(f"the request has {len(urls)} images; this server takes at most {max_images}")
    return conversation, [decode_image_url(url, max_pixels) for url in urls]


def decoding_of(request: ChatCompletionRequest, settings: ServeSettings) -> Decoding:
    """The request's decoding settings, checked against the server's limits."""
    if request.n != 1:
        raise SailvlError(f"n must be 1, got {request.n}")
    if request.stop:
        raise SailvlError("stop sequences are not supported; generation stops at <|im_end|>")
    if not request.messages:
        raise SailvlError("messages must not be empty")
    temperature = request.temperature or 0.0  # unset or 0: greedy, what judges and evals want
    if temperature < 0:
        raise SailvlError(f"temperature must be >= 0, got {temperature}")
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise SailvlError(f"{name} must be at least 1, got {value}")
        if value is not None and value > settings.max_tokens_limit:
            raise SailvlError(f"{name} is {value}; this server generates at most {settings.max_tokens_limit}")
    max_new = next(
        (n for n in (request.max_completion_tokens, request.max_tokens) if n is not None),
        settings.max_new_tokens,
    )
    return Decoding(max_new, temperature, request.seed)


class _QueueStreamer(TextStreamer):
    """Decoded text pieces handed from the generating thread to the event loop; None marks the end."""

    def __init__(self, tokenizer, loop: asyncio.AbstractEventLoop):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.loop, self.pieces = loop, asyncio.Queue()

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        try:
            self.loop.call_soon_threadsafe(self.pieces.put_nowait, text)
            if stream_end:
                self.loop.call_soon_threadsafe(self.pieces.put_nowait, None)
        except RuntimeError:  # the loop closed (server stopped): nobody is reading
            pass


def _error(message: str, status: int = 400, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(message, kind), status_code=status)


def _usage(completion: Completion) -> dict:
    total = completion.prompt_tokens + completion.completion_tokens
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "total_tokens": total}  # fmt: skip


def _failure(err: BaseException) -> JSONResponse:
    if isinstance(err, ShuttingDown):
        return _error(str(err), 503, "server_error")
    if isinstance(err, SailvlError):
        return _error(str(err))
    return _error(f"generation failed: {type(err).__name__}: {err}", 500, "server_error")


def build_app(model, processor, settings: ServeSettings) -> FastAPI:
    """The FastAPI application serving `model`; its generation worker (`app.state.batcher`) starts now."""
    batcher = Batcher(
        model,
        processor,
        settings.max_batch,
        settings.batch_window_ms / 1000,
        settings.max_tiles,
        settings.msac,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.stop(join_s=5.0)

    app = FastAPI(title="sailvl serve", lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(RequestGate, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc: RequestValidationError) -> JSONResponse:
        # OpenAI clients expect 400 for a malformed request, not FastAPI's 422.
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error("the request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return _error(f"{where}: {first.get('msg', 'invalid request')}")

    def envelope(kind: str, request_id: str, choices: list[dict]) -> dict:
        return {"id": request_id, "object": kind, "created": int(time.time()), "model": settings.model_name,
                "choices": choices}  # fmt: skip

    async def events(job: Job, request_id: str, include_usage: bool) -> AsyncIterator[str]:
        def event(delta: dict, finish: str | None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps(envelope('chat.completion.chunk', request_id, [choice]))}\n\n"

        try:
            yield event({"role": "assistant", "content": ""}, None)
            while (piece := await job.streamer.pieces.get()) is not None:
                if piece:
                    yield event({"content": piece}, None)
            try:
                completion = await asyncio.wrap_future(job.future)
            except Exception as err:
                yield f"data: {json.dumps(error_body(str(err), 'server_error'))}\n\n"
                return
            yield event({}, completion.finish_reason)
            if include_usage:
                chunk = {**envelope("chat.completion.chunk", request_id, []), "usage": _usage(completion)}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled = True  # a client that left mid-stream frees its row at the next token

    @app.get("/v1/models")
    def list_models() -> dict:
        model_card = {"id": settings.model_name, "object": "model", "created": created, "owned_by": "sailvl"}
        return {"object": "list", "data": [model_card]}

    @app.get("/stats")
    def stats() -> dict:
        """Counters of the generation worker: requests answered, `generate` calls, largest batch, failures."""
        return dict(batcher.stats)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest):
        try:
            decoding = decoding_of(request, settings)
            # Decoding images is CPU work: off the event loop, so other requests keep being accepted.
            conversation, images = await run_in_threadpool(
                to_conversation, request.messages, settings.max_images, settings.max_pixels
            )
        except SailvlError as err:
            return _error(str(err))
        streamer = _QueueStreamer(processor.tokenizer, asyncio.get_running_loop()) if request.stream else None
        job = Job(GenRequest(images=images, conversation=conversation), decoding, streamer)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        try:
            future = batcher.submit(job)
        except ShuttingDown as err:
            return _failure(err)
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return StreamingResponse(events(job, request_id, include_usage), media_type="text/event-stream")
        try:
            completion = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        except Exception as err:
            return _failure(err)
        text = processor.tokenizer.decode(completion.ids, skip_special_tokens=True)
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": completion.finish_reason}  # fmt: skip
        return {**envelope("chat.completion", request_id, [choice]), "usage": _usage(completion)}

    return app


class _Server(uvicorn.Server):
    """uvicorn's server, whose SIGINT / SIGTERM first stops the generation worker: a running generation ends at
    its next token (its request gets 503), so uvicorn's wait for open requests is short."""

    def handle_exit(self, sig, frame) -> None:
        self.config.app.state.batcher.stop()
        super().handle_exit(sig, frame)


def make_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """The uvicorn server for an app from `build_app` (`.run()` blocks until a signal or `handle_exit`)."""
    # The graceful-shutdown timeout only backs up the worker's stop: a stopped generation ends in one step.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)
    return _Server(config)


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          settings: ServeSettings | None = None) -> None:  # fmt: skip
    """Load the model directory and serve it until SIGINT / SIGTERM (blocking); `settings` default to the
    directory's name as model name."""
    model_dir = Path(model_dir)
    settings = settings or ServeSettings(model_dir.name)
    if not model_dir.is_dir():
        raise SailvlError(f"model directory {model_dir} does not exist")
    model = load_model(model_dir, device=device)
    model.eval()
    processor = SailVLProcessor.from_pretrained(model_dir)
    make_server(build_app(model, processor, settings), host, port).run()
