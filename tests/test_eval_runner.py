"""TSV reading, benchmark resolution, runner caching and interrupt-and-resume with a fake predictor."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sailvl.errors import SailvlError
from sailvl.eval.prompts import build_prompt
from sailvl.eval.registry import MCQ_SUFFIX, YESNO_SUFFIX, auto_spec, get_benchmark, resolve_benchmark
from sailvl.eval.runner import PREDICTIONS_FILE, run_eval
from sailvl.eval.tsv import read_benchmark, write_benchmark


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _mixed_rows(n: int = 12) -> list[dict]:
    """MCQ, yes/no and short-answer rows, as a synthetic benchmark holds them."""
    rows = []
    for i in range(n):
        kind = ("mcq", "yesno", "vqa")[i % 3]
        row = {"index": i, "image": _png((i * 20, 0, 0)), "question": f"q{i}\twith tab, \"quotes\"\nand newline",
               "category": kind, "A": "", "B": "", "C": "", "D": ""}  # fmt: skip
        if kind == "mcq":
            row.update(A="red", B="green", C="blue", D="gray", answer="ABCD"[i % 4])
        else:
            row["answer"] = ("yes" if i % 2 else "no") if kind == "yesno" else str(i)
        rows.append(row)
    return rows


def test_read_benchmark_roundtrip_references_and_multi_image(tmp_path):
    path = tmp_path / "b.tsv"
    rows = _mixed_rows(3)
    rows[2]["image"] = "0"  # VLMEvalKit reference to row 0's image
    rows.append({"index": 3, "image": [_png("red"), _png("blue")], "question": "two", "answer": "x"})
    write_benchmark(path, rows)
    items = list(read_benchmark(path))
    assert [it.index for it in items] == [0, 1, 2, 3]
    assert items[0].question == 'q0\twith tab, "quotes"\nand newline'
    assert items[0].options == {"A": "red", "B": "green", "C": "blue", "D": "gray"}
    assert items[1].options == {}  # empty option cells are dropped
    assert items[2].images == items[0].images and items[2].image_key == "0"
    assert len(items[3].images) == 2
    assert Image.open(io.BytesIO(items[3].images[1])).getpixel((0, 0)) == (0, 0, 255)
    bare = list(read_benchmark(path, decode_images=False))
    assert bare[2].image_key == "0" and bare[2].images == []


def test_prompts_by_task(tmp_path):
    spec = auto_spec("synthetic")
    write_benchmark(tmp_path / "x.tsv", _mixed_rows(3))
    items = list(read_benchmark(tmp_path / "x.tsv"))
    mcq, yesno, vqa = (build_prompt(spec, it) for it in items)
    assert mcq.startswith("<image>\n") and "\nA. red\nB. green" in mcq and mcq.endswith(MCQ_SUFFIX)
    assert yesno.endswith(YESNO_SUFFIX)
    assert vqa.endswith("Answer the question using a single word or phrase.")


def test_registered_benchmarks_use_vlmevalkit_prompts():
    from sailvl.eval.tsv import BenchItem

    image = [_png("red")]
    mcq = BenchItem(0, "Which?", "A", {"A": "cat", "B": "dog"}, hint="Look left.", images=image)
    assert build_prompt(get_benchmark("MMBench_DEV_EN_V11"), mcq) == (
        "<image>\nLook left.\nWhich?\nA. cat\nB. dog\n" + MCQ_SUFFIX
    )
    open_mmmu = BenchItem(1, "How many?", "3", images=image)
    assert build_prompt(get_benchmark("MMMU_DEV_VAL"), open_mmmu).endswith(
        "How many?\nAnswer the question directly."
    )
    yesno = BenchItem(2, "Is it red?", "Yes", images=image)
    assert build_prompt(get_benchmark("MME"), yesno) == (
        "<image>\nIs it red? Answer the question using a single word or phrase."
    )
    assert build_prompt(get_benchmark("HallusionBench"), yesno).endswith(
        "red? Please answer yes or no. Answer the question using a single word or phrase."
    )
    assert build_prompt(get_benchmark("POPE"), yesno) == "<image>\nIs it red?"
    assert build_prompt(get_benchmark("OCRBench"), yesno).endswith(
        "red?\nAnswer the question using a single word or phrase."
    )
    assert build_prompt(get_benchmark("MMVet"), yesno) == "<image>\nIs it red?"
    two = BenchItem(3, "Same?", "no", images=image * 2)
    assert build_prompt(get_benchmark("POPE"), two) == "Image-1: <image>\nImage-2: <image>\nSame?"


def test_resolve_benchmark(tmp_path):
    with pytest.raises(SailvlError, match=r"AI2D_TEST.tsv"):
        resolve_benchmark("AI2D_TEST", tmp_path)
    with pytest.raises(SailvlError, match="known benchmarks"):
        resolve_benchmark("NoSuchBench", tmp_path)
    with pytest.raises(SailvlError, match="does not exist"):
        resolve_benchmark(str(tmp_path / "missing.tsv"), None)
    write_benchmark(tmp_path / "MMBench_DEV_EN_V11.tsv", _mixed_rows(1))
    spec, path = resolve_benchmark("mmbench_dev_v11", tmp_path)  # alias, any case
    assert spec.scorer == "mcq_circular" and path.name == "MMBench_DEV_EN_V11.tsv"
    assert get_benchmark("DocVQA_VAL").max_tiles == 18 and get_benchmark("OCRBench").max_tiles == 24


class FakePredictor:
    """Answers right on items whose index is in `right`, else a wrong answer; can fail after N calls."""

    def __init__(self, right: set[int], fail_after: int | None = None):
        self.right, self.fail_after, self.calls, self.seen = right, fail_after, 0, []

    def __call__(self, items, prompts, max_tiles, max_new_tokens):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.seen.extend(it.index for it in items)
        assert all(it.images for it in items) and max_tiles == 6
        return [it.answer if it.index in self.right else "unsure" for it in items]


def test_run_eval_scores_and_resumes_identically(tmp_path):
    bench = tmp_path / "synthetic.tsv"
    write_benchmark(bench, _mixed_rows(12))
    right = {0, 1, 2, 3, 4, 5}
    full = run_eval([str(bench)], tmp_path / "full", FakePredictor(right), batch_size=4)
    result = full["benchmarks"]["synthetic"]
    assert result["score"] == pytest.approx(50.0)
    assert set(result["per_category"]) == {"mcq", "yesno", "vqa"}
    assert result["per_category"]["mcq"]["chance"] == 25.0
    assert result["per_category"]["yesno"]["chance"] == 50.0
    assert full["average"] == pytest.approx(50.0)
    assert full["opencompass_average"] is None and full["opencompass_partial"] is True

    out = tmp_path / "resumed"
    interrupted = FakePredictor(right, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_eval([str(bench)], out, interrupted, batch_size=4)
    cached = (out / "synthetic" / PREDICTIONS_FILE).read_text().splitlines()
    assert len(cached) == 8  # two batches of four were saved before the interruption
    resumed = FakePredictor(right)
    again = run_eval([str(bench)], out, resumed, batch_size=4)
    assert sorted(resumed.seen) == [8, 9, 10, 11]  # only the missing items were asked
    assert again == full
    assert (out / "results.json").read_text() == (tmp_path / "full" / "results.json").read_text()


def test_judge_benchmark_skipped_without_judge(tmp_path):
    write_benchmark(
        tmp_path / "MMVet.tsv", [{"index": 0, "image": _png("red"), "question": "q", "answer": "a"}]
    )
    write_benchmark(tmp_path / "AI2D_TEST.tsv", _mixed_rows(1))
    results = run_eval(["MMVet", "AI2D_TEST"], tmp_path / "out", FakePredictor({0}), data_dir=tmp_path)
    assert results["benchmarks"]["MMVet"]["status"] == "needs_judge"
    assert "--judge" in results["benchmarks"]["MMVet"]["message"]
    assert results["opencompass_average"] == pytest.approx(100.0)  # AI2D only; MMVet left out
    assert results["opencompass_partial"] is True and "MMVet" in results["opencompass_missing"]
    prompts = []

    def judge(prompt, temperature=0.0, max_tokens=128):
        prompts.append(prompt)
        return "1.0" if prompt.endswith("q | a | a | ") else "0.0"

    judged = run_eval(["MMVet"], tmp_path / "judged", FakePredictor({0}), data_dir=tmp_path, judge=judge)
    assert judged["benchmarks"]["MMVet"]["score"] == 100.0 and len(prompts) == 1
    assert (
        judged["judge"].endswith("<locals>.judge") and judged["benchmarks"]["MMVet"]["extraction_failed"] == 0
    )
    # A rerun with the same judge reuses the judgement; another judge redoes it.
    run_eval(["MMVet"], tmp_path / "judged", FakePredictor({0}), data_dir=tmp_path, judge=judge)
    assert len(prompts) == 1

    def other_judge(prompt, temperature=0.0, max_tokens=128):
        return "0.0"

    rejudged = run_eval(
        ["MMVet"], tmp_path / "judged", FakePredictor({0}), data_dir=tmp_path, judge=other_judge
    )
    assert rejudged["benchmarks"]["MMVet"]["score"] == 0.0 and rejudged["judge"].endswith("other_judge")


def test_lenient_scores_never_enter_the_opencompass_average():
    from sailvl.eval.runner import summarize

    exact = {"status": "scored", "score": 60.0, "matching": "exact"}
    lenient = {"status": "scored", "score": 90.0, "matching": "lenient"}
    out = summarize({"MMStar": exact, "AI2D_TEST": lenient})
    assert out["average"] == 75.0
    assert out["opencompass_average"] == 60.0
    assert "AI2D_TEST" in out["opencompass_missing"] and out["opencompass_partial"]
    assert summarize({"AI2D_TEST": lenient})["opencompass_average"] is None
