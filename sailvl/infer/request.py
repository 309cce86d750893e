"""The generation request (`GenRequest`) and image coercion every inference backend shares: a leaf module,
so `generate`, `score` and `vllm_backend` import it without importing each other back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from sailvl.data.images import load_image
from sailvl.errors import SailvlError


@dataclass
class GenRequest:
    """One prompt: `images` (PIL images, paths or encoded bytes) and either a `question` (one user turn with
    `<image>` placeholders, or none: then one `<image>` per image is prepended) or a whole `conversation`."""

    images: list[Any] = field(default_factory=list)
    question: str | None = None
    conversation: list[dict] | None = None

    def prompt(self) -> str | list[dict]:
        """The question or conversation handed to the processor."""
        if (self.question is None) == (self.conversation is None):
            raise SailvlError("a generation request needs exactly one of `question` or `conversation`")
        return self.question if self.question is not None else self.conversation


def as_image(ref: Any) -> Image.Image:
    """An RGB PIL image from a PIL image, a path or encoded bytes."""
    if isinstance(ref, Image.Image):
        return ref if ref.mode == "RGB" else ref.convert("RGB")  # the same object: caches key on it
    return load_image(ref)
