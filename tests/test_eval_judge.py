"""MMVet / MathVista judging (VLMEvalKit prompts, retries, post-processing), judge specs, inference presets,
and eval decoding images exactly as training does."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from PIL import Image

from sailvl.errors import SailvlError
from sailvl.eval import judges
from sailvl.eval.registry import PRESETS, apply_preset, auto_spec, get_benchmark, get_preset
from sailvl.eval.tsv import BenchItem


class ScriptedJudge:
    """Replies from a script and records each call's temperature and max_tokens."""

    def __init__(self, replies: list[str]):
        self.replies, self.calls = list(replies), []

    def __call__(self, prompt: str, temperature: float = 0.0, max_tokens: int = 128) -> str:
        self.calls.append((prompt, temperature, max_tokens))
        return self.replies.pop(0)


def test_prompts_are_vlmevalkit_byte_for_byte():
    # Hashes of the strings built by ms-vlmeval 0.0.20's build_mmvet_gpt4_prompt / build_mathvista_gpt4_prompt
    # (checked against the wheel when written); any edit to the prompt text breaks comparability.
    assert hashlib.sha256(judges.MMVET_PROMPT.encode()).hexdigest().startswith("f3e131e1d998e890")
    prompt = judges.mathvista_prompt("Q", "P")
    assert hashlib.sha256(prompt.encode()).hexdigest().startswith("63a84c24875ca011")
    mmvet = judges.mmvet_prompt("What?", "a<AND>b", "pred")
    assert mmvet.endswith("\nWhat? | a <AND> b | pred | ")


def test_mmvet_retries_with_rising_temperature_then_scores():
    item = BenchItem(index=1, question="q", answer="a", category="rec,ocr")
    judge = ScriptedJudge(["hmm", "1.5", "0.7"])
    record = judges.judge_mmvet(judge, item, "pred")
    assert record["score"] == 0.7 and not record["failed"]
    assert [t for _, t, _ in judge.calls] == [0.0, 0.5, 1.0]
    assert {m for _, _, m in judge.calls} == {judges.MMVET_MAX_TOKENS}
    assert "failed to parse" in record["log"] and "invalid score: 1.5" in record["log"]
    failed = judges.judge_mmvet(ScriptedJudge(["x"] * 5), item, "pred")
    assert failed == {"score": 0.0, "log": failed["log"], "failed": True} and "All 5 retries" in failed["log"]

    other = BenchItem(index=2, question="q", answer="a", category="know")
    result = judges.mmvet_result([item, other], {"1": record, "2": failed})
    assert result["score"] == pytest.approx(35.0)
    assert result["per_capability"]["rec"]["accuracy"] == pytest.approx(70.0)
    assert result["per_capability"]["know"]["accuracy"] == 0.0
    assert set(result["per_category"]) == {"rec_ocr", "know"}
    assert result["judged"] == 2 and result["extraction_failed"] == 1


def _mathvista(index, answer, **extra) -> BenchItem:
    return BenchItem(index=index, question="Question: ?", answer=answer, extra=extra)


def test_mathvista_prefetch_extraction_and_post_check():
    integer = _mathvista(1, "14", question_type="free_form", answer_type="integer", task="math word problem")
    assert judges.judge_mathvista(ScriptedJudge([]), integer, "14")["log"] == "Prefetch succeed"
    judge = ScriptedJudge([judges.FAIL_MSG, "14"])
    record = judges.judge_mathvista(judge, integer, "The missing number is 14.")
    assert record["res"] == "14" and [t for _, t, _ in judge.calls] == [0.0, 0.5]
    assert judge.calls[0][2] == judges.MATHVISTA_MAX_TOKENS
    assert judges.mathvista_check(integer, "13", prefetch=False) is False

    choice = _mathvista(
        2, "8/11", question_type="multi_choice", answer_type="text", answer_option="B",
        choices="['3/11', '8/11', '6/11']", skills="['arithmetic reasoning']",
    )  # fmt: skip
    assert judges.mathvista_check(choice, "The answer is B", prefetch=True) == "B"
    assert judges.mathvista_check(choice, "8/11", prefetch=True) == "B"  # unique option text
    assert judges.mathvista_check(choice, "C", prefetch=False) is False
    floating = _mathvista(3, "1.45", question_type="free_form", answer_type="float")
    failed = judges.judge_mathvista(ScriptedJudge([judges.FAIL_MSG] * 5), floating, "about one dollar")
    assert failed["failed"] and failed["res"] == ""

    judged = {"1": record, "2": {"res": "B", "log": "Prefetch succeed", "failed": False}, "3": failed}
    result = judges.mathvista_result([integer, choice, floating], judged)
    assert result["score"] == pytest.approx(200 / 3, abs=1e-3)
    assert result["prefetched"] == 1 and result["judged"] == 2 and result["extraction_failed"] == 1
    assert result["per_skill"]["arithmetic reasoning"]["accuracy"] == 100.0


def test_judge_specs():
    assert judges.parse_judge_spec("openai:gpt-4o-mini") == ("gpt-4o-mini", None)
    assert judges.parse_judge_spec("openai:tiny@http://127.0.0.1:9/v1") == ("tiny", "http://127.0.0.1:9/v1")
    with pytest.raises(SailvlError, match="names no model"):
        judges.parse_judge_spec("openai:")
    with pytest.raises(SailvlError, match="neither openai:MODEL"):
        judges.build_judge("/no/such/judge")
    judge = judges.build_judge("openai:tiny@http://127.0.0.1:9/v1")
    assert judges.judge_name(judge) == "openai:tiny@http://127.0.0.1:9/v1"


def test_sailvl_preset_tile_caps_and_tokens():
    sailvl = get_preset("sailvl")
    assert apply_preset(get_benchmark("OCRBench"), sailvl).max_tiles == 24
    assert apply_preset(get_benchmark("DocVQA_VAL"), sailvl).max_tiles == 18
    assert apply_preset(get_benchmark("ChartQA_TEST"), sailvl).max_tiles == 12
    assert apply_preset(get_benchmark("AI2D_TEST"), sailvl).max_tiles == 10
    assert apply_preset(auto_spec("synth"), sailvl).max_new_tokens == 1024
    assert apply_preset(auto_spec("synth"), sailvl, max_new_tokens=4).max_new_tokens == 4
    assert apply_preset(get_benchmark("AI2D_TEST"), PRESETS["vlmevalkit"]) == get_benchmark("AI2D_TEST")
    with pytest.raises(SailvlError, match="known presets"):
        get_preset("internvl3")


def _exif_rotated_jpeg(size=(1000, 600)) -> bytes:
    """A JPEG stored landscape with EXIF orientation 6 (shown portrait), left half red, right half blue."""
    image = Image.new("RGB", size, (220, 20, 20))
    image.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def test_eval_decodes_an_exif_rotated_image_like_training(tiny_processor, tmp_path):
    from sailvl.data.images import load_image
    from sailvl.eval.model_eval import item_images

    data = _exif_rotated_jpeg()
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)
    max_tiles = tiny_processor.max_tiles
    # The training loader's decode (data/loader.py): load_image(ref, max_side=tile * max_tiles).
    trained = load_image(str(path), max_side=tiny_processor.tile_size * max_tiles)
    item = BenchItem(index=0, question="q", answer="a", images=[data])
    evaluated = item_images(item, tiny_processor.tile_size * max_tiles)  # what model_predictor passes
    assert evaluated[0].size == trained.size and evaluated[0].height > evaluated[0].width  # portrait
    train_tiles = tiny_processor.tile_image(trained, max_tiles)
    eval_tiles = tiny_processor.tile_image(evaluated[0], max_tiles)
    assert torch.equal(train_tiles, eval_tiles)
    # The decode eval used before (no EXIF transpose) gives other tiles: the check above can fail.
    with Image.open(io.BytesIO(data)) as raw:
        naive = tiny_processor.tile_image(raw.convert("RGB"), max_tiles)
    assert naive.shape != train_tiles.shape or not torch.equal(naive, train_tiles)


def test_local_judge_sampled_retries_are_reproducible_and_leave_global_rng_alone(tiny_tokenizer, tmp_path):
    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import build_model, save_model

    processor = SailVLProcessor(
        tiny_tokenizer, tile_size=112, patch_size=14, downsample_ratio=0.5, max_tiles=1
    )
    processor.save_pretrained(
        save_model(build_model("tiny", tokenizer=tiny_tokenizer, seed=0), tmp_path / "j")
    )
    judge = judges.build_judge(str(tmp_path / "j"), seed=0)
    prompt = "What colour is the circle?"
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = judge(prompt, temperature=5.0, max_tokens=8)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is not reseeded
    torch.rand(7)  # move the global stream: the judge's draws must not depend on it
    assert judge(prompt, temperature=5.0, max_tokens=8) == first
    # The draws are real samples from the judge's seed: another seed writes another reply.
    other = judges.LocalJudge(str(tmp_path / "j"), seed=1)
    assert other(prompt, temperature=5.0, max_tokens=8) != first and first
