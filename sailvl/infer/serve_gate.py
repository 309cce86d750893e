"""The door of `sailvl serve`: API-key check and request-body cap, before FastAPI reads or parses anything."""

from __future__ import annotations

import hmac
import json


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def send_error(send, status: int, message: str, kind: str = "invalid_request_error", code=None) -> None:
    """A complete JSON error response on a raw ASGI `send`."""
    body = json.dumps(error_body(message, kind, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    """ASGI middleware: with an `api_key`, a request without `Authorization: Bearer <key>` gets 401; a body over
    `max_body_bytes` gets 413, judged from Content-Length when sent and by counting the bytes as they stream in
    otherwise (chunked uploads), so an oversized body is never buffered whole or parsed."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # compare_digest: the time taken does not tell how much of a guessed key was right.
        if self.expected is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            await send_error(send, 401, "missing or wrong API key (send Authorization: Bearer KEY)",
                             code="invalid_api_key")  # fmt: skip
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, 400, "the Content-Length header must be a number of bytes")
                return
            if int(declared) > self.max_body_bytes:
                await send_error(send, 413, self._too_large(int(declared)))
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                await send_error(send, 413, self._too_large(size, at_least=more))
                return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        amount = f"{'at least ' if at_least else ''}{size} bytes"
        return f"the request body is {amount}; this server takes at most {self.max_body_bytes} (--max-body-bytes)"


def _replay(body: bytes, receive):
    """A `receive` that hands over the already-read `body` once, then the connection's own messages."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
