"""Inference: batched generation (transformers; vLLM when installed and asked for) and streaming chat."""

from sailvl.infer.chat import ChatSettings, chat, load_chat_images, stream_chat
from sailvl.infer.generate import BACKENDS, GenRequest, generate, generate_ids

__all__ = [
    "BACKENDS",
    "ChatSettings",
    "GenRequest",
    "chat",
    "generate",
    "generate_ids",
    "load_chat_images",
    "stream_chat",
]
