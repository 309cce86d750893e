"""The `<think>...</think>` reasoning trace of an assistant answer: its tags, and splitting it off the answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# Qwen3 tokenizers (SAIL-VL2's LLMs) hold these as added, non-special tokens 151667 / 151668, so decoding
# with skip_special_tokens keeps them; sailvl's locally trained tokenizer adds them the same way.
THINK_START = "<think>"
THINK_END = "</think>"
THINK_TOKENS = (THINK_START, THINK_END)


def split_thinking(text: str) -> tuple[str, str | None]:
    """(answer, trace) of a model's reply, as VLMEvalKit splits it (`split_thinking` in vlmeval/inference.py,
    the SPLIT_THINK path): the answer is the text after the last `</think>`, stripped; the trace is what lies
    before it (inside `<think>` when there is one trace). A reply without `</think>` is its own answer, unchanged,
    and has no trace (None), also when a `<think>` was opened and never closed (cut off by max_new_tokens)."""
    if THINK_END not in text:
        return text, None
    before, _, answer = text.rpartition(THINK_END)
    if THINK_END not in before and THINK_START in before:
        before = before.split(THINK_START, 1)[
            1
        ]  # one well-formed trace: its inside (VLMEvalKit keeps the rest)
    return answer.strip(), before.strip()


def unclosed_thinking(text: str) -> bool:
    """True when the reply opens a `<think>` trace that never closes (the answer is missing)."""
    return THINK_START in text and THINK_END not in text


def hide_thinking(pieces: Iterable[str]) -> Iterator[str]:
    """The streamed text pieces without a leading `<think>...</think>` trace and the blank space after it.

    Text that does not open with `<think>` passes through unchanged (held back only while it could still be
    the start of the tag); a trace that never closes yields nothing."""
    buffer, state = "", "start"  # start -> inside -> answer (skipping blank space first) -> through
    for piece in pieces:
        if state == "through":
            yield piece
            continue
        buffer += piece
        if state == "start":
            head = buffer.lstrip()
            if THINK_START.startswith(head):
                continue  # blank, or a prefix of "<think>": wait for more
            if not head.startswith(THINK_START):
                state = "through"
                yield buffer
                continue
            state = "inside"
        if state == "inside":
            if THINK_END not in buffer:
                continue
            buffer, state = buffer.split(THINK_END, 1)[1], "answer"
        buffer = buffer.lstrip()
        if buffer:
            state = "through"
            yield buffer
    if state == "start" and buffer:
        yield buffer  # a reply that is a bare prefix of "<think>" (or blank) is not a trace
