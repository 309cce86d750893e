"""Unit behaviour of the curation steps: judge-answer parsing, QA parsing, text checks, pHash banding,
model steps driven by a scripted generator, SFT scoring and the rising curriculum split."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from _curation_helpers import random_image

from sailvl.curation.base import build_step
from sailvl.curation.dedup import phash_int, resolve_phash, resolve_phash_bruteforce
from sailvl.curation.judge import parse_score, parse_yes_no
from sailvl.curation.qa_synthesis import parse_qa_pairs
from sailvl.curation.scoring import split_curriculum, stage_means, write_curriculum
from sailvl.curation.text_checks import TextChecksParams, text_reject_reason
from sailvl.data.sample import Sample
from sailvl.errors import SailvlError


@pytest.mark.parametrize(
    "text,score",
    [
        ("4", 4),
        ("Score: 2/5", 2),
        ("**five**", 5),
        ("I would rate it 3 out of 5.", 3),
        ("5/5", 5),
        ("Rating - 1", 1),
        ("out of 5, I give 4", 4),
        ("9", None),
        ("", None),
        ("great caption", None),
        ("3.5", None),
        ("2.0", 2),
    ],
)
def test_parse_score(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize(
    "text,answer",
    [
        ("Yes", True),
        ("no.", False),
        ("  YES, it matches", True),
        ("No, the circle is blue", False),
        ("The caption is aligned", True),
        ("not aligned", False),
        ("maybe", None),
        ("", None),
        ("nothing", None),
    ],
)
def test_parse_yes_no(text, answer):
    assert parse_yes_no(text) is answer if answer is not None else parse_yes_no(text) is None


def test_parse_qa_pairs():
    text = "Q: What colour is the circle? A: Red.\nQ: How many squares? A: Two\nQ: dangling"
    assert parse_qa_pairs(text) == [("What colour is the circle?", "Red."), ("How many squares?", "Two")]
    assert parse_qa_pairs("no pairs here") == []


def test_text_checks_reasons():
    p = TextChecksParams(min_words=3, language="en")
    assert text_reject_reason("A red circle is on the left of the image.", p) is None
    assert text_reject_reason("red circle", p) == "text_too_short"
    assert text_reject_reason("", p) == "text_empty"
    assert text_reject_reason("0101 2020 3030 ## 4040", p) == "text_garbage"
    assert text_reject_reason("circle " * 30, p) == "text_repetitive"
    assert text_reject_reason("Ein roter Kreis links neben einem blauen Quadrat", p) == "text_language"


def test_phash_banding_equals_bruteforce():
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(60)]
    items = []
    for i in range(400):
        value = rng.choice(base)
        for _ in range(rng.randint(0, 8)):
            value ^= 1 << rng.randrange(64)
        items.append((f"x{i}", value))
    for threshold in (0, 3, 6):
        assert resolve_phash(items, threshold) == resolve_phash_bruteforce(items, threshold)


def test_phash_sees_resized_copy():
    import io

    img = random_image(7, 128)
    small = io.BytesIO()
    img.resize((96, 96)).save(small, format="JPEG", quality=85)
    orig = io.BytesIO()
    img.save(orig, format="PNG")
    other = io.BytesIO()
    random_image(8, 128).save(other, format="PNG")
    a, b, c = (phash_int(x.getvalue()) for x in (orig, small, other))
    assert (a ^ b).bit_count() <= 4 < (a ^ c).bit_count()


def _sample(i: int, caption: str = "a red circle", **meta) -> Sample:
    conv = [{"role": "user", "content": "<image>\nDescribe."}, {"role": "assistant", "content": caption}]
    return Sample(id=f"s{i}", source="t", images=["x.png"], conversation=conv, metadata=dict(meta))


def _run(step, samples):
    rejected = []
    step.set_sink(lambda rec, name, reason: rejected.append((rec.id, reason)))
    kept = list(step.run(samples))
    return kept, rejected


def test_judge_step_thresholds():
    step = build_step({"type": "judge", "batch_size": 2})
    answers = {"good": ("4", "Yes"), "poor": ("2", "yes"), "wrong": ("5", "No."), "junk": ("???", "yes")}

    def fake(requests):
        out = []
        for images, prompt in requests:
            assert images == ["x.png"]
            if isinstance(prompt, str):  # alignment question first
                out.append(answers[prompt.split("Caption: ")[1].split("\n")[0]][1])
            else:  # richness as the follow-up turn of the same conversation
                assert prompt[1]["role"] == "assistant" and prompt[2]["content"].startswith("Rate")
                out.append(answers[prompt[0]["content"].split("Caption: ")[1].split("\n")[0]][0])
        return out

    step.generate_fn = fake
    kept, rejected = _run(step, [_sample(i, c) for i, c in enumerate(answers)])
    assert [s.id for s in kept] == ["s0"] and kept[0].metadata == {"judge_vir": 4, "judge_ita": True}
    assert rejected == [("s1", "judge_low_richness"), ("s2", "judge_misaligned"), ("s3", "judge_unparseable")]
    assert step.stats["unparsed_vir"] == 1 and step.stats["unparsed_ita"] == 0


def _scripted_judge(answers: dict[str, tuple[str, str]]):
    """A judge step answering (richness, alignment) per caption from `answers`."""
    step = build_step({"type": "judge", "batch_size": 4})

    def fake(requests):
        def caption(prompt):
            text = prompt if isinstance(prompt, str) else prompt[0]["content"]
            return text.split("Caption: ")[1].split("\n")[0]

        return [answers[caption(p)][0 if isinstance(p, list) else 1] for _, p in requests]

    step.generate_fn = fake
    return step


def test_judge_step_reads_strong_judge_answers():
    """Verbose answers of strong judges: each "no" said in words rejects the caption (the old parser kept
    all of these), a refusal is counted as unparsed and rejected, and the raw answer stays with the record."""
    answers = {
        "c0": ("Rating (1-5): 4", "Yes, the caption accurately describes the image."),
        "c1": ("On a scale of 1 to 5, I'd give it a 4.", "The caption is not correct."),
        "c2": ("Score: 5", "Aligned: no"),
        "c3": ("4", '{"aligned": false}'),
        "c4": ("**4**", "It is not true that the circle is red."),
        "c5": ("I'd give it a 2.", "Yes."),
        "c6": ("4/5", "I cannot view images."),
        "c7": ("I cannot view images.", "No, the square is green."),
    }
    kept, rejected = _run(_scripted_judge(answers), [_sample(i, c) for i, c in enumerate(answers)])
    assert [s.id for s in kept] == ["s0"] and kept[0].metadata == {"judge_vir": 4, "judge_ita": True}
    assert rejected == [
        ("s1", "judge_misaligned"),
        ("s2", "judge_misaligned"),
        ("s3", "judge_misaligned"),
        ("s4", "judge_misaligned"),
        ("s5", "judge_low_richness"),
        ("s6", "judge_unparseable"),
        ("s7", "judge_misaligned"),  # a "no" that was read names the reason, whatever the richness answer
    ]


def test_judge_step_counts_unparsed_answers_and_keeps_them():
    answers = {"c0": ("4", "I cannot view images."), "c1": ("maybe a 3 or 4", "No."), "c2": ("4", "Maybe.")}
    step = _scripted_judge(answers)
    dropped = []
    step.set_sink(lambda rec, name, reason: dropped.append((rec, reason)))
    assert list(step.run([_sample(i, c) for i, c in enumerate(answers)])) == []
    # ... and an unreadable answer is still counted when another reason rejects the record (c1).
    assert step.stats["unparsed_ita"] == 2 and step.stats["unparsed_vir"] == 1
    assert step.stats["rejected:judge_unparseable"] == 2 and step.stats["rejected:judge_misaligned"] == 1
    meta = {rec.id: rec.metadata for rec, _ in dropped}
    assert meta["s0"]["judge_ita"] is None and meta["s0"]["judge_ita_answer"] == "I cannot view images."
    assert meta["s1"]["judge_vir_answer"] == "maybe a 3 or 4" and "judge_ita_answer" not in meta["s1"]


def test_judge_prompts_match_synthetic_judge_data():
    from sailvl.curation.judge import ITA_PROMPT, VIR_PROMPT
    from sailvl.synth.judge import ALIGN_PROMPT, RICHNESS_PROMPT

    assert ITA_PROMPT == "<image>\n" + ALIGN_PROMPT and VIR_PROMPT == RICHNESS_PROMPT


def test_recaption_uses_alt_text_hint_and_keeps_it():
    step = build_step({"type": "recaption", "hint_prompt": "<image>\nDescribe. Hint: {alt_text}"})
    seen = []

    def fake(requests):
        seen.extend(p for _, p in requests)
        return ["A detailed caption." if "dog" in p else "  " for _, p in requests]

    step.generate_fn = fake
    kept, rejected = _run(step, [_sample(0, "a dog"), _sample(1, "a cat")])
    assert seen == ["<image>\nDescribe. Hint: a dog", "<image>\nDescribe. Hint: a cat"]
    assert kept[0].conversation[-1]["content"] == "A detailed caption."
    assert kept[0].metadata["alt_text"] == "a dog" and rejected == [("s1", "recaption_empty")]


def test_qa_synthesis_step():
    step = build_step({"type": "qa_synthesis", "pairs": 2})
    step.generate_fn = lambda reqs: ["Q: What is red? A: The circle. Q: Where? A: Left. Q: x? A: y", "none"]
    kept, rejected = _run(step, [_sample(0), _sample(1)])
    assert [t["role"] for t in kept[0].conversation] == ["user", "assistant"] * 2
    assert kept[0].conversation[0]["content"] == "<image>\nWhat is red?"
    assert rejected == [("s1", "qa_unparseable")]


def test_sft_scoring_prefers_metadata_and_asks_judge_otherwise():
    step = build_step({"type": "sft_scoring"})
    asked = []

    def fake(requests):
        asked.extend(p for _, p in requests)
        return ["3"] * len(requests)

    step.generate_fn = fake
    full = _sample(0, difficulty=2, complexity=1.5, relevance=4)
    partial = _sample(1, difficulty=1)
    kept, _ = _run(step, [full, partial])
    assert kept[0].metadata["complexity"] == 1.5 and kept[1].metadata["relevance"] == 3.0
    assert len(asked) == 2  # only the partial sample's complexity and relevance went to the judge


def _scored(n, seed, correlated):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = rng.random()
        vals = [base + rng.gauss(0, 0.5) if correlated else rng.random() for _ in range(3)]
        out.append(_sample(i, difficulty=1 + 2 * vals[0], complexity=vals[1], relevance=round(5 * vals[2])))
    return out


@pytest.mark.parametrize("correlated", [True, False])
@pytest.mark.parametrize("stages", [2, 3, 4])
def test_curriculum_stage_means_strictly_rise(correlated, stages):
    keys = ["difficulty", "complexity", "relevance"]
    samples = _scored(300, stages, correlated)
    split = split_curriculum(samples, keys, stages)
    assert sorted(s.id for stage in split for s in stage) == sorted(s.id for s in samples)
    means = stage_means(split, keys)
    for key in keys:
        assert all(a[key] < b[key] for a, b in zip(means[:-1], means[1:], strict=True)), (key, means)


def test_curriculum_refuses_constant_key(tmp_path):
    samples = [_sample(i, difficulty=i, complexity=1, relevance=i) for i in range(30)]
    with pytest.raises(SailvlError, match="rises on all"):
        split_curriculum(samples, ["difficulty", "complexity", "relevance"], 3)
    summary = write_curriculum(samples, ["difficulty", "relevance"], 3, tmp_path)
    assert [s["records"] for s in summary["stages"]] == [10, 10, 10]
    assert (tmp_path / "stage-3.jsonl").read_text().count("\n") == 10


def test_stratified_curriculum_keeps_each_task_share_and_orders_within_it(tmp_path):
    """Task-level difficulty (constant within colour, varying within digit) makes a plain split an order by
    task; stratified by task, each stage holds a third of every task and rises within each on what varies."""
    rng = random.Random(3)
    samples = [
        _sample(i, task="colour", difficulty=1, complexity=rng.random(), relevance=rng.random())
        for i in range(60)
    ]
    samples += [_sample(60 + i, task="digit", difficulty=2 + rng.random(), complexity=rng.random(),
                        relevance=rng.random()) for i in range(30)]  # fmt: skip
    keys = ["difficulty", "complexity", "relevance"]
    plain = split_curriculum(samples, keys, 3)
    digits = [sum(s.metadata["task"] == "digit" for s in stage) for stage in plain]
    assert digits[2] > 2 * max(digits[0], 1), digits  # the confound stratifying removes
    summary = write_curriculum(samples, keys, 3, tmp_path, stratify="task")
    assert [e["per_group"] for e in summary["stages"]] == [{"colour": 20, "digit": 10}] * 3
    assert (
        summary["unordered_groups"] == {}
    )  # colour is split on the keys that vary in it, not cut by fallback
    stages = [
        [json.loads(x) for x in (tmp_path / f"stage-{k}.jsonl").read_text().splitlines()] for k in (1, 2, 3)
    ]
    assert sorted(r["id"] for stage in stages for r in stage) == sorted(s.id for s in samples)
    for task, varying in (("colour", ["complexity", "relevance"]), ("digit", keys)):
        for key in varying:
            means = [
                np.mean([r["metadata"][key] for r in stage if r["metadata"]["task"] == task])
                for stage in stages
            ]
            assert means[0] < means[1] < means[2], (task, key, means)
    rare = [_sample(90 + i, task="aardvark", difficulty=3 - i, complexity=0, relevance=0) for i in range(2)]
    summary = write_curriculum(samples + rare, keys, 3, tmp_path / "rare", stratify="task")
    assert [e["per_group"].get("aardvark", 0) for e in summary["stages"]] == [1, 1, 0]
    assert json.loads((tmp_path / "rare" / "stage-1.jsonl").read_text().splitlines()[0])["id"] == "s91"
    assert (
        list(summary["unordered_groups"]) == ["aardvark"]
        and "cannot split 2" in summary["unordered_groups"]["aardvark"]
    )
    # Nothing varies within colour: it is cut into equal parts by summed scores, named, and nothing is lost.
    summary = write_curriculum(samples, ["difficulty"], 3, tmp_path / "x", stratify="task")
    assert summary["unordered_groups"] == {"colour": "none of difficulty varies within it"}
    assert [e["per_group"] for e in summary["stages"]] == [{"colour": 20, "digit": 10}] * 3
    with pytest.raises(SailvlError, match="no 'split' field"):
        write_curriculum(samples, keys, 3, tmp_path / "y", stratify="split")


def test_measure_judge_rates():
    from sailvl.curation.judge_quality import measure_judge

    step = build_step({"type": "judge", "use_vir": False})
    step.generate_fn = lambda reqs: ["No" if "wrong" in p else "Yes" for _, p in reqs]
    labelled = [(_sample(0, "right one"), True), (_sample(1, "wrong one"), False), (_sample(2, "wrong too"), True),
                (_sample(3, "wrong"), False), (_sample(4, "ok"), False)]  # fmt: skip
    rates = measure_judge(step, labelled)
    assert rates["keep_rate_good"] == 0.5 and rates["reject_rate_bad"] == pytest.approx(2 / 3)
    assert rates["precision"] == 0.5 and rates["recall"] == 0.5


def test_likelihood_judge_thresholds_and_follow_up_turn():
    """ita_method=likelihood: the caption's weakest token margin decides; richness is asked after an alignment
    exchange whose answer is that verdict (the judge's training format)."""
    import torch

    from sailvl.infer import AnswerScores

    step = build_step({"type": "judge", "ita_method": "likelihood", "min_alignment": -2.0})
    margins = {"good caption": [0.0, -0.5], "bad caption": [0.0, -3.0, -0.1], "": []}
    scored = []

    def score(reqs):
        scored.extend(reqs)
        return [
            AnswerScores([1] * len(margins[a]), torch.tensor(margins[a]) - 1, torch.tensor(margins[a]))
            for _, _, a in reqs
        ]

    asked = []

    def fake(reqs):
        asked.extend(reqs)
        return ["4"] * len(reqs)

    step.score_fn, step.generate_fn = score, fake
    kept, rejected = _run(step, [_sample(i, c) for i, c in enumerate(["good caption", "bad caption", ""])])
    assert [s.id for s in kept] == ["s0", "s2"]  # an empty caption has no token the judge disagrees with
    assert kept[0].metadata == {"judge_ita_score": -0.5, "judge_ita": True, "judge_vir": 4}
    assert rejected == [("s1", "judge_misaligned")]
    assert all(prompt == "<image>\nDescribe the image in detail." for _, prompt, _ in scored)
    follow_ups = [conv[1]["content"] for _, conv in asked]
    assert follow_ups == ["Yes", "No", "Yes"] and "bad caption" in asked[1][1][0]["content"]


def test_best_threshold_balanced_accuracy():
    from sailvl.curation.judge_quality import best_threshold
    from sailvl.errors import SailvlError

    assert best_threshold([-0.1, 0.0, -0.2], [-3.0, -2.0]) == pytest.approx(-1.1)  # midway in the gap
    # Overlap: -1 keeps 3/4 aligned and rejects 3/4 misaligned (the best balance); midway to -2.
    assert best_threshold([-1.0, -0.5, 0.0, -4.0], [-5.0, -3.0, -2.0, -0.7]) == pytest.approx(-1.5)
    with pytest.raises(SailvlError):
        best_threshold([], [-1.0])
