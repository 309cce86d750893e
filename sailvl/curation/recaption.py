"""Recaption step (SAIL-Caption): a captioner VLM writes a detailed caption for each image, with the
web alt-text given as a hint for world knowledge; the alt-text is kept in metadata."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sailvl.curation.records import alt_text_of, with_caption
from sailvl.curation.step import register_step
from sailvl.curation.vlm import ModelStep, ModelStepParams


class RecaptionParams(ModelStepParams):
    prompt: str = Field(
        "<image>\nDescribe the image in detail.",
        description="Captioner prompt; `{alt_text}` (if present) is replaced by the record's alt-text.",
    )
    hint_prompt: str | None = Field(
        None,
        description="Prompt used instead of `prompt` when the record has an alt-text, e.g. "
        "'<image>\\nDescribe the image in detail. Web alt-text (may be wrong): {alt_text}'.",
    )
    output_prompt: str = Field(
        "<image>\nDescribe the image in detail.", description="User turn stored with the new caption."
    )
    max_new_tokens: int = Field(128, ge=1, description="Caption length limit (tokens).")
    min_chars: int = Field(1, ge=0, description="Reject generations shorter than this (characters).")


@register_step("recaption")
class Recaption(ModelStep):
    """Replace each record's caption by the captioner's detailed caption."""

    Params = RecaptionParams

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: RecaptionParams = self.params  # type: ignore[assignment]
        alts = [alt_text_of(r) for r in records]
        prompts = [
            (p.hint_prompt if p.hint_prompt and alt else p.prompt).replace("{alt_text}", alt) for alt in alts
        ]
        captions = self.ask(records, prompts)
        results: list[Any] = []
        for record, alt, caption in zip(records, alts, captions, strict=True):
            caption = caption.strip()
            if len(caption) < max(p.min_chars, 1):
                results.append("recaption_empty")
                continue
            new = with_caption(record, caption)
            new.conversation = [
                {"role": "user", "content": p.output_prompt},
                {"role": "assistant", "content": caption},
            ]
            new.metadata = {**record.metadata, "alt_text": alt, "caption_type": "recaptioned"}
            results.append(new)
        return results
