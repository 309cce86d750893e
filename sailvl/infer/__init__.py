"""Inference: batched generation (transformers; vLLM when installed and asked for), teacher-forced answer
scoring and streaming chat."""

from sailvl.infer.chat import ChatSettings, chat, load_chat_images, stream_chat
from sailvl.infer.generate import BACKENDS, GenRequest, generate, generate_ids
from sailvl.infer.score import AnswerScores, score_answers

__all__ = [
    "AnswerScores",
    "BACKENDS",
    "ChatSettings",
    "GenRequest",
    "chat",
    "generate",
    "generate_ids",
    "load_chat_images",
    "score_answers",
    "stream_chat",
]
