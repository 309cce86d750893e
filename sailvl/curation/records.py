"""Helpers on `Sample` records for curation: caption and prompt access, alt-text, caption replacement."""

from __future__ import annotations

import copy

from sailvl.data.sample import Sample


def caption_of(sample: Sample) -> str:
    """The text a caption filter looks at: the last assistant turn ('' when there is none)."""
    for turn in reversed(sample.conversation):
        if turn.get("role") == "assistant":
            return str(turn.get("content") or "")
    return ""


def prompt_of(sample: Sample) -> str:
    """The first user turn without the `<image>` placeholder ('' when there is none)."""
    for turn in sample.conversation:
        if turn.get("role") == "user":
            return str(turn.get("content") or "").replace("<image>", "").strip()
    return ""


def with_caption(sample: Sample, caption: str, prompt: str | None = None) -> Sample:
    """A copy of `sample` whose last assistant turn is `caption` (one turn is appended if there is none)."""
    new = copy.copy(sample)
    new.conversation = [dict(t) for t in sample.conversation]
    new.metadata = dict(sample.metadata)
    for turn in reversed(new.conversation):
        if turn.get("role") == "assistant":
            turn["content"] = caption
            break
    else:
        if prompt is not None or not new.conversation:
            new.conversation.append(
                {"role": "user", "content": f"<image>\n{prompt or 'Describe the image.'}"}
            )
        new.conversation.append({"role": "assistant", "content": caption})
    return new


def alt_text_of(sample: Sample) -> str:
    """Web alt-text of an image record: `metadata['alt_text']`, else the current caption."""
    alt = sample.metadata.get("alt_text")
    return str(alt) if alt else caption_of(sample)
