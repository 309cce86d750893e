"""QA synthesis step: turn a detailed caption into question-answer turns with an LLM/VLM prompt."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from sailvl.curation.records import caption_of
from sailvl.curation.step import register_step
from sailvl.curation.vlm import ModelStep, ModelStepParams

_QA = re.compile(
    r"Q\s*[:.)-]\s*(?P<q>.+?)\s*A\s*[:.)-]\s*(?P<a>.+?)(?=\s*Q\s*[:.)-]|\Z)", re.DOTALL | re.IGNORECASE
)


def parse_qa_pairs(text: str, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """`Q: ... A: ...` pairs in generation order (newlines or not between them); empty parts are dropped."""
    pairs = []
    for match in _QA.finditer(text or ""):
        q, a = match.group("q").strip(), match.group("a").strip()
        if q and a:
            pairs.append((q, a))
    return pairs[:max_pairs] if max_pairs else pairs


class QASynthesisParams(ModelStepParams):
    prompt: str = Field(
        "<image>\nDescription of the image: {caption}\nWrite {n} question-answer pairs about the image, "
        "each as 'Q: <question> A: <answer>' on its own line.",
        description="Prompt; `{caption}` and `{n}` are replaced.",
    )
    pairs: int = Field(3, ge=1, description="Pairs asked for (and kept at most) per image.")
    max_new_tokens: int = Field(256, ge=1, description="Generation length limit (tokens).")


@register_step("qa_synthesis")
class QASynthesis(ModelStep):
    """Replace each caption record by a multi-turn QA conversation on the same image."""

    Params = QASynthesisParams

    def process_batch(self, records: list[Any]) -> list[Any]:
        p: QASynthesisParams = self.params  # type: ignore[assignment]
        prompts = [p.prompt.replace("{caption}", caption_of(r)).replace("{n}", str(p.pairs)) for r in records]
        answers = self.ask(records, prompts)
        results: list[Any] = []
        for record, answer in zip(records, answers, strict=True):
            pairs = parse_qa_pairs(answer, p.pairs)
            if not pairs:
                results.append("qa_unparseable")
                continue
            conversation = []
            for k, (q, a) in enumerate(pairs):
                conversation.append({"role": "user", "content": f"<image>\n{q}" if k == 0 else q})
                conversation.append({"role": "assistant", "content": a})
            record.metadata = {
                **record.metadata,
                "qa_from_caption": caption_of(record),
                "task": "synthetic_qa",
            }
            record.conversation = conversation
            results.append(record)
        return results
