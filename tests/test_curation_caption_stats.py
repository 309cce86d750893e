"""Caption quality statistics (SAIL-VL's lexical diversity): n-gram and POS counts, and the run report's
before / after recaption table and plot."""

from __future__ import annotations

import json
from typing import Any

from _curation_helpers import make_pipeline, write_corpus
from _plot_checks import TAB_BLUE, TAB_ORANGE, colour_blobs
from PIL import Image

from sailvl.curation.base import BatchStep, register_step
from sailvl.curation.caption_stats import caption_stats
from sailvl.curation.executors import LocalExecutor
from sailvl.curation.records import caption_of, with_caption
from sailvl.curation.report import format_funnel, write_report


@register_step("test_fake_recaption")
class FakeRecaption(BatchStep):
    """Test-only recaption: a fixed caption numbered by position in its batch, the old one kept as alt-text."""

    def process_batch(self, records: list[Any]) -> list[Any]:
        out = []
        for i, r in enumerate(records):
            new = with_caption(r, f"a small red dog runs quickly across the green field number {i}")
            new.metadata = {**r.metadata, "alt_text": caption_of(r), "caption_type": "recaptioned"}
            out.append(new)
        return out


def test_caption_stats_counts_ngrams_and_parts_of_speech():
    stats = caption_stats(["A red dog runs", "a red dog sleeps", "the tall tree"])
    assert stats["captions"] == 3 and stats["mean_words"] == round(11 / 3, 2)
    assert stats["unique_1grams"] == 8  # a red dog runs sleeps the tall tree
    assert stats["unique_2grams"] == 6 and stats["unique_3grams"] == 4
    assert stats["nouns"] == 2 and stats["verbs"] == 2 and stats["adjectives"] == 2  # dog tree / runs sleeps
    assert caption_stats([], tag=False) == {"captions": 0, "mean_words": 0.0, "unique_1grams": 0,
                                            "unique_2grams": 0, "unique_3grams": 0}  # fmt: skip


def test_report_has_before_after_recaption_stats(tmp_path):
    data, _ = write_corpus(tmp_path, 8)
    steps = [{"type": "text_checks", "min_words": 1}, {"type": "test_fake_recaption", "batch_size": 4}]
    LocalExecutor(make_pipeline(data, tmp_path / "run", steps)).run()
    report = write_report(tmp_path / "run")
    (source,) = report["caption_stats"]
    before, after = report["caption_stats"][source]["before"], report["caption_stats"][source]["after"]
    assert before["captions"] == after["captions"] == 8
    # "a small red dog runs quickly across the green field number i": dog / field / number, runs, small / red / green
    assert (after["nouns"], after["verbs"], after["adjectives"]) == (3, 1, 3)
    assert before["verbs"] == 0  # the alt-texts name shapes and places, no action
    assert after["unique_1grams"] == 11 + 4 and before["unique_1grams"] != after["unique_1grams"]
    assert "caption_stats" in json.loads((tmp_path / "run" / "report" / "funnel.json").read_text())
    plot = tmp_path / "run" / "report" / "caption_quality.png"
    assert Image.open(plot).size == (600, 400)
    # One source x (nouns, verbs, adjectives, 2-grams), each with its legend patch: "before" (blue) has no verb
    # bar (the alt-texts' verb count is 0), "after" (orange) has all four.
    assert colour_blobs(plot, TAB_BLUE, min_pixels=20) == 3 + 1
    assert colour_blobs(plot, TAB_ORANGE, min_pixels=20) == 4 + 1
    assert "unique_2grams" in format_funnel(report) and "after" in format_funnel(report)
