"""Likelihood forced choice: of the answers a benchmark's task allows, which one does the model find most likely?

A secondary score for small models (issue 27). A greedy answer can be a constant string or a wrong format while
the model still ranks the right answer first; teacher-forced scoring reads that ranking. The candidate set of an
item is every distinct gold answer of its task (`category`) in the scored items, so chance is 1 / (that count).
"""

from __future__ import annotations

from pathlib import Path

from sailvl.data.images import load_image
from sailvl.eval.aggregate import item_scorer
from sailvl.eval.prompts import build_prompt, tiles_for
from sailvl.eval.registry import MAX_TILES_PER_SAMPLE, BenchmarkSpec
from sailvl.eval.tsv import BenchItem, read_benchmark
from sailvl.infer.request import GenRequest
from sailvl.infer.score import score_answers
from sailvl.infer.vision_cache import VisionCache

# Benchmarks whose rows may be open answers (per row for "auto": the synthetic world's TSVs); MCQ and yes/no rows
# already are choices and are left out.
FORCED_CHOICE_SCORERS = ("vqa_match", "auto")


def task_choices(items: list[BenchItem]) -> dict[str, list[str]]:
    """Per task (`category`), the sorted distinct gold answers: each item's candidates."""
    choices: dict[str, set[str]] = {}
    for item in items:
        choices.setdefault(item.category, set()).add(str(item.answer).strip())
    return {task: sorted(answers) for task, answers in choices.items()}


def forced_choice_score(
    model,
    processor,
    spec: BenchmarkSpec,
    path: str | Path,
    limit: int | None = None,
    max_tiles: int | None = None,
    batch_size: int = 16,
) -> dict:
    """Accuracy (%) of picking the gold answer by summed answer log-prob among its task's candidates, on the open
    answer rows among the first `limit` items of the benchmark TSV at `path` (the items `sailvl eval --limit`
    scores). Tasks with a single candidate are left out (nothing to choose). The answer's tokens are scored, not the
    closing `<|im_end|>` (`infer.score`), so a candidate that is a prefix of another can tie it at best. Returns {score, chance, n, per_category: {task: {accuracy, n,
    choices}}}."""
    items = [it for i, it in enumerate(read_benchmark(path)) if limit is None or i < limit]
    items = [it for it in items if item_scorer(spec, it) == "vqa_match"]
    choices = task_choices(items)
    cache = VisionCache()
    rows: dict[str, list[float]] = {}
    chances = []
    for item in items:
        candidates = choices[item.category]
        if len(candidates) < 2:
            continue
        tiles = tiles_for(spec, item, max_tiles, MAX_TILES_PER_SAMPLE)
        images = [load_image(data, max_side=processor.tile_size * tiles) for data in item.images]
        request = GenRequest(images=images, question=build_prompt(spec, item))
        scores = score_answers(
            model, processor, [request] * len(candidates), candidates, batch_size, tiles, cache
        )
        totals = [float(s.logprobs.sum()) for s in scores]
        pick = candidates[max(range(len(candidates)), key=totals.__getitem__)]
        rows.setdefault(item.category, []).append(100.0 * (pick == str(item.answer).strip()))
        chances.append(100.0 / len(candidates))
    hits = [h for task in rows.values() for h in task]
    return {
        "score": sum(hits) / len(hits) if hits else None,
        "chance": sum(chances) / len(chances) if chances else None,
        "n": len(hits),
        "per_category": {
            task: {"accuracy": sum(v) / len(v), "n": len(v), "choices": len(choices[task])}
            for task, v in sorted(rows.items())
        },
    }
