"""The one record type (`Sample`) that flows through readers, curation, writers and the loader."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

ImageRef = str | bytes

ROLES = ("system", "user", "assistant")
# InternVL / LLaVA `from` values and OpenAI roles, mapped onto our three roles.
_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}


@dataclass
class Sample:
    """One image-text record: `images` are paths or encoded bytes, `conversation` holds `<image>` placeholders."""

    id: str
    source: str
    images: list[ImageRef] = field(default_factory=list)
    conversation: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: byte images become `{"bytes_b64": ...}`."""
        images = [
            {"bytes_b64": base64.b64encode(im).decode("ascii")} if isinstance(im, bytes) else im
            for im in self.images
        ]
        return {
            "id": self.id,
            "source": self.source,
            "images": images,
            "conversation": [dict(turn) for turn in self.conversation],
            "metadata": dict(self.metadata),
        }

    def to_json(self) -> str:
        """One-line JSON string (the inverse of `Sample.from_json`)."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """Inverse of `to_dict`."""
        images = [
            base64.b64decode(im["bytes_b64"]) if isinstance(im, dict) else im for im in data.get("images", [])
        ]
        return cls(
            id=str(data["id"]),
            source=str(data.get("source", "")),
            images=images,
            conversation=[dict(turn) for turn in data.get("conversation", [])],
            metadata=dict(data.get("metadata") or {}),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Sample:
        """Parse a string written by `to_json`."""
        return cls.from_dict(json.loads(text))


def _content_to_text(content: Any) -> tuple[str, int]:
    """OpenAI content (string or typed parts) -> (text with `<image>` placeholders, number of image parts)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    pieces, n_images = [], 0
    for part in content:
        if isinstance(part, str):
            pieces.append(part)
            continue
        kind = part.get("type")
        if kind == "text":
            pieces.append(part.get("text", ""))
        elif kind in ("image", "image_url"):
            pieces.append("<image>\n")
            n_images += 1
        else:
            raise ValueError(f"unknown message part type {kind!r}")
    return "".join(pieces), n_images


def _typed_images(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    refs = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image":
            refs.append(part.get("image") or part.get("path") or part.get("url") or "")
        elif isinstance(part, dict) and part.get("type") == "image_url":
            url = part.get("image_url")
            refs.append(url.get("url", "") if isinstance(url, dict) else str(url))
    return refs


def _resolve(ref: str, image_root: str | None) -> str:
    if image_root and not ref.startswith("/") and "://" not in ref:
        return f"{image_root.rstrip('/')}/{ref}"
    return ref


def sample_from_record(
    record: dict[str, Any], source: str, default_id: str, image_root: str | None = None
) -> Sample:
    """Normalise an InternVL/LLaVA (`conversations`, `from`) or OpenAI (`messages`) record into a `Sample`.

    Relative image paths are joined to `image_root`. Raises ValueError when the record has neither schema.
    """
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    images_field = record.get("images", record.get("image"))
    if images_field is None:
        images: list[ImageRef] = []
    elif isinstance(images_field, str):
        images = [images_field]
    else:
        images = list(images_field)
    conversation: list[dict[str, str]] = []
    if "conversations" in record:
        for turn in record["conversations"]:
            role = _ROLE_ALIASES.get(str(turn.get("from", turn.get("role", ""))).lower())
            if role is None:
                raise ValueError(f"unknown speaker {turn.get('from')!r}")
            conversation.append(
                {"role": role, "content": str(turn.get("value", turn.get("content", "")) or "")}
            )
    elif "messages" in record:
        typed_refs: list[str] = []
        for msg in record["messages"]:
            role = _ROLE_ALIASES.get(str(msg.get("role", "")).lower())
            if role is None:
                raise ValueError(f"unknown role {msg.get('role')!r}")
            text, _ = _content_to_text(msg.get("content"))
            typed_refs.extend(_typed_images(msg.get("content")))
            conversation.append({"role": role, "content": text})
        if not images:
            images = [ref for ref in typed_refs if ref]
    elif "conversation" in record:
        sample = Sample.from_dict({"source": source, **record, "id": record.get("id", default_id)})
        sample.images = [_resolve(im, image_root) if isinstance(im, str) else im for im in sample.images]
        return sample
    else:
        raise ValueError("record has neither 'conversations' nor 'messages'")
    images = [_resolve(im, image_root) if isinstance(im, str) else im for im in images]
    known = {"id", "image", "images", "conversations", "messages", "source"}
    metadata = {k: v for k, v in record.items() if k not in known}
    sample_id = str(record["id"]) if record.get("id") is not None else default_id
    return Sample(
        id=sample_id,
        source=str(record.get("source") or source),
        images=images,
        conversation=conversation,
        metadata=metadata,
    )
