"""Judge quality on labelled (image, caption) pairs such as the synthetic world's judge.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from sailvl.data.sample import Sample
from sailvl.errors import SailvlError


def labelled_caption_pairs(
    judge_jsonl: str | Path, limit: int | None = None
) -> list[tuple[Sample, bool, str]]:
    """judge.jsonl rows as (caption record, caption is good, caption source); good = aligned and richness >= 3.

    Image paths resolve against the file's directory (the world root).
    """
    path = Path(judge_jsonl)
    if not path.is_file():
        raise SailvlError(f"judge pairs file {path} does not exist (expected a world's judge.jsonl)")
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if limit is not None and len(pairs) >= limit:
                break
            row = json.loads(line)
            sample = Sample(
                id=f"judge-{i}",
                source=path.stem,
                images=[str(path.parent / row["image"])],
                conversation=[
                    {"role": "user", "content": "<image>\nDescribe the image in detail."},
                    {"role": "assistant", "content": row["caption"]},
                ],
            )
            good = row["aligned"] == "yes" and int(row["richness"]) >= 3
            pairs.append((sample, good, row.get("caption_source", "unknown")))
    return pairs


def evaluate_judge(model: str | Path, judge_jsonl: str | Path, limit: int | None = None, batch_size: int = 32,
                   min_score: int = 3) -> dict[str, Any]:  # fmt: skip
    """Run the `judge` step with `model` over labelled pairs: keep/reject rates, precision/recall of "kept"
    as a detector of good captions, and the rejected share per caption source."""
    from sailvl.curation.base import build_step

    pairs = labelled_caption_pairs(judge_jsonl, limit)
    step = build_step(
        {"type": "judge", "model": str(model), "batch_size": batch_size, "min_score": min_score}
    )
    rejected: set[str] = set()
    step.set_sink(lambda record, name, reason: rejected.add(record.id))
    list(step.run([sample for sample, _, _ in pairs]))
    good = [s.id for s, ok, _ in pairs if ok]
    bad = [s.id for s, ok, _ in pairs if not ok]
    kept_good = sum(i not in rejected for i in good)
    kept_bad = sum(i not in rejected for i in bad)
    totals = Counter(src for _, _, src in pairs)
    rejected_by = Counter(src for s, _, src in pairs if s.id in rejected)
    return {
        "model": str(model),
        "pairs": str(judge_jsonl),
        "good": len(good),
        "bad": len(bad),
        "keep_rate_good": kept_good / max(len(good), 1),
        "reject_rate_bad": (len(bad) - kept_bad) / max(len(bad), 1),
        "precision": kept_good / max(kept_good + kept_bad, 1),
        "recall": kept_good / max(len(good), 1),
        "rejected_share_by_source": {k: rejected_by[k] / totals[k] for k in sorted(totals)},
    }
