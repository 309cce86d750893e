"""OpenAI-compatible chat-completions server over sailvl generation (`sailvl serve`): `/v1/models` and
`/v1/chat/completions` with base64 `image_url` parts and SSE streaming."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict

from sailvl.config.constants import IMAGE_PLACEHOLDER
from sailvl.data.images import load_image
from sailvl.data.processor import SailVLProcessor
from sailvl.data.template import ROLES
from sailvl.errors import SailvlError
from sailvl.infer.chat import ChatSettings, stream_chat
from sailvl.infer.generate import GenRequest, generate_ids
from sailvl.model import load_model


class ChatMessage(BaseModel):
    """One OpenAI message: `content` is a string or a list of `text` / `image_url` parts."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict] | None = None


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
    n: int = 1
    stop: str | list[str] | None = None


@dataclass
class ServeSettings:
    """Server defaults: `model_name` reported to clients, `max_new_tokens` when a request gives none,
    `max_tiles` per image (None: the processor's), `msac` (second tiling pass)."""

    model_name: str
    max_new_tokens: int = 512
    max_tiles: int | None = None
    msac: bool = False


def decode_image_url(url: str):
    """An RGB image from a `data:image/...;base64,...` URL (remote URLs are refused: no downloads)."""
    if not url.startswith("data:"):
        raise SailvlError("image_url must be a base64 data URL (data:image/png;base64,...)")
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise SailvlError("image_url data URLs must be base64-encoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as err:
        raise SailvlError(f"image_url holds invalid base64: {err}") from err
    return load_image(data)


def to_conversation(messages: list[ChatMessage]) -> tuple[list[dict], list]:
    """OpenAI messages -> (sailvl conversation with `<image>` placeholders where the images were, images)."""
    conversation, images = [], []
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
                    url = ref.get("url", "") if isinstance(ref, dict) else str(ref or "")
                    images.append(decode_image_url(url))
                    pieces.append(f"{IMAGE_PLACEHOLDER}\n")
                else:
                    raise SailvlError(
                        f"messages[{index}] has a content part of type {kind!r}; expected text or image_url"
                    )
            content = "".join(pieces)
        conversation.append({"role": message.role, "content": content})
    return conversation, images


def _check(request: ChatCompletionRequest) -> None:
    if request.n != 1:
        raise SailvlError(f"n must be 1, got {request.n}")
    if request.stop:
        raise SailvlError("stop sequences are not supported; generation stops at <|im_end|>")
    if not request.messages:
        raise SailvlError("messages must not be empty")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def build_app(model, processor, settings: ServeSettings) -> FastAPI:
    """The FastAPI application serving `model` (one request generates at a time)."""
    app = FastAPI(title="sailvl serve")
    lock = threading.Lock()
    created = int(time.time())

    def decoding(request: ChatCompletionRequest) -> ChatSettings:
        temperature = request.temperature or 0.0  # unset or 0: greedy, what judges and evals want
        if temperature < 0:
            raise SailvlError(f"temperature must be >= 0, got {temperature}")
        max_new = next(
            (n for n in (request.max_completion_tokens, request.max_tokens) if n is not None),
            settings.max_new_tokens,
        )
        if max_new < 1:
            raise SailvlError(f"max_tokens must be at least 1, got {max_new}")
        return ChatSettings(max_new, temperature > 0, temperature or 1.0, settings.max_tiles, settings.msac)

    def envelope(kind: str, request_id: str, choice: dict) -> dict:
        return {
            "id": request_id,
            "object": kind,
            "created": int(time.time()),
            "model": settings.model_name,
            "choices": [choice],
        }

    def sse(
        conversation: list[dict], images: list, chat: ChatSettings, seed, request_id: str
    ) -> Iterator[str]:
        def event(delta: dict, finish: str | None) -> str:
            chunk = envelope(
                "chat.completion.chunk", request_id, {"index": 0, "delta": delta, "finish_reason": finish}
            )
            return f"data: {json.dumps(chunk)}\n\n"

        with lock:
            if seed is not None:
                torch.manual_seed(seed)
            yield event({"role": "assistant", "content": ""}, None)
            try:
                for piece in stream_chat(model, processor, conversation, images, chat):
                    if piece:
                        yield event({"content": piece}, None)
            except SailvlError as err:
                yield f"data: {json.dumps({'error': {'message': str(err)}})}\n\n"
                return
            yield event({}, "stop")
            yield "data: [DONE]\n\n"

    @app.get("/v1/models")
    def list_models() -> dict:
        return {
            "object": "list",
            "data": [
                {"id": settings.model_name, "object": "model", "created": created, "owned_by": "sailvl"}
            ],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest):
        try:
            _check(request)
            chat = decoding(request)
            conversation, images = to_conversation(request.messages)
        except SailvlError as err:
            return _error(str(err))
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        if request.stream:
            return StreamingResponse(
                sse(conversation, images, chat, request.seed, request_id),
                media_type="text/event-stream",
            )
        try:
            with lock:
                if request.seed is not None:
                    torch.manual_seed(request.seed)
                ids = generate_ids(
                    model,
                    processor,
                    [GenRequest(images=images, conversation=conversation)],
                    chat.max_new_tokens,
                    chat.do_sample,
                    chat.temperature,
                    chat.max_tiles,
                    chat.msac,
                )[0]
        except SailvlError as err:
            return _error(str(err))
        text = processor.tokenizer.decode(ids, skip_special_tokens=True)
        finish = "length" if len(ids) >= chat.max_new_tokens else "stop"
        message = {"role": "assistant", "content": text}
        return envelope(
            "chat.completion", request_id, {"index": 0, "message": message, "finish_reason": finish}
        )

    return app


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    device: str = "cpu",
    max_new_tokens: int = 512,
    max_tiles: int | None = None,
    msac: bool = False,
) -> None:
    """Load the model directory and serve it until interrupted (blocking)."""
    import uvicorn

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise SailvlError(f"model directory {model_dir} does not exist")
    model = load_model(model_dir, device=device)
    model.eval()
    processor = SailVLProcessor.from_pretrained(model_dir)
    settings = ServeSettings(model_name or model_dir.name, max_new_tokens, max_tiles, msac)
    uvicorn.run(build_app(model, processor, settings), host=host, port=port, log_level="warning")
