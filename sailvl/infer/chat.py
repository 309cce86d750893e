"""Streaming chat: one answer token by token, and the interactive prompt loop of `sailvl chat`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from sailvl.data.images import load_image
from sailvl.data.processor import SailVLProcessor
from sailvl.data.thinking import hide_thinking, unclosed_thinking
from sailvl.errors import SailvlError
from sailvl.infer.generate import GenRequest, generation_kwargs, model_inputs
from sailvl.model import load_model

# `sailvl chat --think`: print a `<think>...</think>` trace as it streams, or only the answer after it.
THINK_MODES = ("show", "hide")
UNFINISHED_THOUGHT = "(the reasoning did not finish within max_new_tokens; no answer)"


@dataclass
class ChatSettings:
    """Decoding settings of a chat: `max_new_tokens` (tokens), `temperature` (0 or `do_sample=False`: greedy),
    `max_tiles` per image (None: the processor's), `msac` (second tiling pass, inference only)."""

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    max_tiles: int | None = None
    msac: bool = False


def stream_chat(
    model, processor, conversation: list[dict], images: list, settings: ChatSettings
) -> Iterator[str]:
    """Yield the assistant's reply to `conversation` (ends with a user turn) as decoded text pieces.

    Generation runs in a background thread feeding transformers' `TextIteratorStreamer`; an error there is
    re-raised here once the stream ends.
    """
    from transformers import TextIteratorStreamer

    request = GenRequest(images=list(images), conversation=conversation)
    inputs = model_inputs(model, processor, [request], settings.max_tiles, settings.msac)
    kwargs = generation_kwargs(
        processor.tokenizer, settings.max_new_tokens, settings.do_sample, settings.temperature
    )
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with torch.no_grad():
                model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield from streamer
    worker.join()
    if failure:
        raise failure[0]


def _collect(pieces: Iterable[str], into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


def load_chat_images(paths: list[str | Path]) -> list:
    """Decode the images given on the command line; a missing or corrupt file is a one-line SailvlError."""
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise SailvlError(f"image {path} does not exist")
        images.append(load_image(str(path)))
    return images


def chat(
    model,
    processor,
    images: list,
    settings: ChatSettings,
    question: str | None = None,
    read_line: Callable[[str], str] = input,
    write: Callable[[str], None] | None = None,
    show_thinking: bool = True,
) -> list[dict]:
    """Answer `question`, or without one run an interactive loop (empty line, EOF or `/exit` ends it).

    The images belong to the first user turn. Replies are written piece by piece through `write`
    (default: stdout, flushed); without `show_thinking` a leading `<think>...</think>` trace is not written,
    only the answer after it. Returns the conversation, whose replies keep their traces.
    """
    import sys

    if write is None:

        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

    conversation: list[dict] = []
    questions = [question] if question is not None else None
    while True:
        if questions is not None:
            if not questions:
                break
            text = questions.pop(0)
        else:
            try:
                text = read_line(">>> ")
            except EOFError:
                write("\n")
                break
            if text.strip() in ("", "/exit", "/quit"):
                break
        conversation.append({"role": "user", "content": text})
        pieces: list[str] = []
        stream = _collect(stream_chat(model, processor, conversation, images, settings), pieces)
        for piece in stream if show_thinking else hide_thinking(stream):
            write(piece)
        reply = "".join(pieces)
        if not show_thinking and unclosed_thinking(reply):
            write(UNFINISHED_THOUGHT)
        write("\n")
        conversation.append({"role": "assistant", "content": reply})
    return conversation


def run_chat_command(
    model_dir: str | Path,
    image_paths: list[str],
    settings: ChatSettings,
    question: str | None,
    device: str = "auto",
    think: str = "show",
) -> None:
    """`sailvl chat`: check the inputs, load model and processor from `model_dir`, then chat on stdout.
    `think` ("show" or "hide") says whether a `<think>` trace is printed before the answer."""
    # Cheap checks first, so a typo does not cost a model load.
    if think not in THINK_MODES:
        raise SailvlError(f"--think must be one of {', '.join(THINK_MODES)}, got {think!r}")
    images = load_chat_images(image_paths)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_dir, device=device)
    processor = SailVLProcessor.from_pretrained(model_dir)
    chat(model, processor, images, settings, question=question, show_thinking=think == "show")
