"""Model steps with a real (tiny, untrained) model directory: recaption and judge run through
`sailvl.infer`, every record still ends in exactly one place, judge answers are parsed or rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sailvl.curation.config import load_pipeline
from sailvl.curation.executors import run_pipeline
from sailvl.curation.lineage import check_lineage, iter_lineage

PIPELINES = Path(__file__).resolve().parents[1] / "sailvl" / "config" / "pipelines"


@pytest.fixture(scope="module")
def world_and_model(tmp_path_factory):
    import torch

    from sailvl.synth import generate_world
    from sailvl.synth.tiny_model import make_tiny_model_dir

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("m")
    generate_world(root / "world", n=6, seed=1)
    model_dir = make_tiny_model_dir(root / "world", root / "model", seed=0, vocab_size=600)
    return root, model_dir


def _captioner_that_writes(model_dir: Path, out: Path) -> Path:
    """A copy of the untrained model that cannot emit whitespace-only tokens: its greedy caption is "7 7 7 ..."
    (the untrained model's own is newlines, which recaption rejects as empty, so the judge would see nothing)."""
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model, save_model

    model, processor = load_model(model_dir, device="cpu"), SailVLProcessor.from_pretrained(model_dir)
    tokenizer = processor.tokenizer
    blank = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    with torch.no_grad():
        model.lm_head.weight[blank] = 0.0
    processor.save_pretrained(save_model(model, out))
    return out


def test_recaption_then_judge_with_model_dir(world_and_model):
    root, model_dir = world_and_model
    captioner = _captioner_that_writes(model_dir, root / "captioner")
    cfg = load_pipeline(
        PIPELINES / "synth_recaption_judge.yaml",
        [f"input.paths=[{root}/world/pretrain.jsonl]", f"output_dir={root}/run", f"steps.2.model={captioner}",
         f"steps.5.model={model_dir}", "steps.2.max_new_tokens=12", "steps.3.min_words=1",
         "steps.3.max_repeated_ngram_fraction=1.0", "steps.3.min_alpha_fraction=0.0"],
    )  # fmt: skip
    manifest = run_pipeline(cfg)
    report = check_lineage(root / "run")
    assert report.ok and manifest["input_records"] == 12
    # Each image has an alt-text record (-c0) and a detailed one (-c1): select keeps the alt half; the captioner's
    # caption passes the (loosened) text checks and dedup; the untrained judge answers the richness question
    # with newlines, which it cannot parse. Every record's end, by id:
    fates = {r["id"]: (r["status"], r.get("step"), r.get("reason")) for r in iter_lineage(root / "run")}
    expected = {f"{i:06d}-c1": ("rejected", "select", "not_selected:caption_type") for i in range(6)}
    expected |= {f"{i:06d}-c0": ("rejected", "judge", "judge_unparseable") for i in range(6)}
    assert fates == expected
    for name in ("recaption", "text_checks", "dedup"):
        assert manifest["steps"][name] == {"in": 6, "out": 6}, name
    # The judge saw the recaptioned records (the captioner's text, alt-text kept) and scored their alignment.
    judged = [json.loads(line) for line in open(root / "run" / "rejected" / "shard-00000.jsonl")]
    judged = [r["sample"] for r in judged if r["step"] == "judge"]
    assert len(judged) == 6
    for sample in judged:
        assert sample["conversation"][-1]["content"] == " ".join(["7"] * 12)
        assert sample["metadata"]["caption_type"] == "recaptioned" and sample["metadata"]["alt_text"]
        assert sample["metadata"]["judge_ita_score"] < 0


def test_score_answers_agrees_with_greedy_generation_and_padding(world_and_model):
    """Teacher-forced scoring is consistent with decoding: the greedy answer scores margin 0 at every token,
    one changed token scores below 0 exactly there, and a batch (right padding, other lengths) gives the
    same numbers as one request at a time."""
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.infer import GenRequest, generate_ids, score_answers
    from sailvl.model import load_model

    root, model_dir = world_and_model
    model, processor = load_model(model_dir, device="cpu"), SailVLProcessor.from_pretrained(model_dir)
    image = str(next((root / "world" / "images").glob("*.png")))
    request = GenRequest(images=[image], question="<image>\nDescribe the image in detail.")
    greedy = generate_ids(model, processor, [request], max_new_tokens=6)[0]
    assert len(greedy) == 6, "the untrained model stopped early; pick another seed"
    answer = processor.tokenizer.decode(greedy)
    (scored,) = score_answers(model, processor, [request], [answer])
    assert scored.tokens == greedy  # the answer re-tokenises to the decoded ids
    assert torch.allclose(scored.margins, torch.zeros(len(greedy)), atol=1e-5)
    assert (scored.logprobs < 0).all()

    other = [t for t in range(10, 100) if t != greedy[2]][0]
    changed = processor.tokenizer.decode(greedy[:2] + [other] + greedy[3:])
    (bad,) = score_answers(model, processor, [request], [changed])
    if bad.tokens[:3] == greedy[:2] + [other]:  # the edit did not merge with a neighbour when re-tokenised
        assert bad.margins[2] < -1e-4 and torch.allclose(bad.margins[:2], torch.zeros(2), atol=1e-5)

    text_only = GenRequest(question="Say something.")
    answers = [answer, "A red circle.", "x"]
    batch = score_answers(model, processor, [request, text_only, request], answers, batch_size=3)
    singles = [
        score_answers(model, processor, [r], [a])[0]
        for r, a in zip([request, text_only, request], answers, strict=True)
    ]
    for b, s in zip(batch, singles, strict=True):
        assert b.tokens == s.tokens
        assert torch.allclose(b.logprobs, s.logprobs, atol=1e-4) and torch.allclose(
            b.margins, s.margins, atol=1e-4
        )


def test_likelihood_judge_with_model_dir_records_scores(world_and_model):
    """The likelihood judge runs on a real model dir: every caption gets a margin score <= 0 and its verdict
    follows `min_alignment` (0 keeps only captions the judge would have written itself)."""
    from sailvl.curation.base import build_step
    from sailvl.data.sample import Sample

    root, model_dir = world_and_model
    images = sorted(str(p) for p in (root / "world" / "images").glob("*.png"))[:3]
    records = [
        Sample(id=f"r{i}", source="t", images=[im],
               conversation=[{"role": "user", "content": "<image>\nDescribe."},
                             {"role": "assistant", "content": "A small red circle on a white background."}])
        for i, im in enumerate(images)
    ]  # fmt: skip
    for threshold, expect_kept in ((-1e9, 3), (0.0, 0)):
        step = build_step(
            {
                "type": "judge",
                "model": str(model_dir),
                "ita_method": "likelihood",
                "use_vir": False,
                "min_alignment": threshold,
                "batch_size": 2,
            }  # fmt: skip
        )
        rejected: list = []
        step.set_sink(lambda rec, name, reason, out=rejected: out.append((rec, reason)))
        kept = list(step.run(records))
        assert len(kept) == expect_kept and len(kept) + len(rejected) == 3
        for rec in kept + [r for r, _ in rejected]:
            assert rec.metadata["judge_ita_score"] <= 0
        assert all(reason == "judge_misaligned" for _, reason in rejected)


def test_judge_calibrate_saves_threshold_that_judge_eval_uses(world_and_model, tmp_path, capsys):
    """`sailvl curate judge-calibrate` fits min_alignment on labelled pairs and stores it in the judge dir;
    `judge-eval` with ita_method=likelihood then reports and applies that threshold."""
    import json
    import shutil

    from sailvl.cli import main

    root, model_dir = world_and_model
    judge = tmp_path / "judge"
    shutil.copytree(model_dir, judge)
    pairs = root / "world" / "judge.jsonl"
    main(
        [
            "curate",
            "judge-calibrate",
            str(judge),
            str(pairs),
            "--out",
            str(tmp_path / "cal.json"),
            "batch_size=4",
        ]
    )
    saved = json.loads((judge / "judge_calibration.json").read_text())
    assert saved == {k: v for k, v in json.loads((tmp_path / "cal.json").read_text()).items() if k in saved}
    assert saved["min_alignment"] <= 0 and saved["aligned"] == saved["corrupted"] == 6
    # Measured: the fitted threshold keeps 5 of 6 aligned pairs and rejects 4 of 6 corrupted ones (balanced 0.75;
    # keep-everything scores 0.5, so anything above it means the threshold was fitted on the scores).
    kept, rejected = saved["keep_rate_aligned"] * 6, saved["reject_rate_corrupted"] * 6
    assert (round(kept, 6), round(rejected, 6)) == (5, 4), saved

    main(["curate", "judge-eval", str(judge), str(pairs), "--out", str(tmp_path / "q.json"), "ita_method=likelihood",
          "use_vir=false"])  # fmt: skip
    quality = json.loads((tmp_path / "q.json").read_text())
    assert quality["ita_method"] == "likelihood" and quality["min_alignment"] == saved["min_alignment"]
    assert quality["good"] + quality["bad"] == sum(1 for _ in open(pairs))
    # A positive threshold is a config error that names the key.
    with pytest.raises(SystemExit):
        main(["curate", "judge-eval", str(judge), str(pairs), "ita_method=likelihood", "min_alignment=0.5"])
    assert "config key 'min_alignment'" in capsys.readouterr().err


def test_judge_decodes_each_image_once(world_and_model, monkeypatch):
    """The likelihood judge scores the caption and asks for richness about the same image: one decode."""
    import importlib

    from sailvl.curation.base import build_step
    from sailvl.data.sample import Sample

    root, model_dir = world_and_model
    images = sorted(str(p) for p in (root / "world" / "images").glob("*.png"))[:3]
    # A model step decodes every image with infer.request.as_image, through the load_image that module imports.
    request_module = importlib.import_module("sailvl.infer.request")
    decode, calls = request_module.load_image, []
    monkeypatch.setattr(
        request_module, "load_image", lambda ref, *a, **k: calls.append(ref) or decode(ref, *a, **k)
    )
    step = build_step({"type": "judge", "model": str(model_dir), "ita_method": "likelihood", "batch_size": 3,
                       "max_new_tokens": 2, "min_alignment": -1e9})  # fmt: skip
    records = [
        Sample(id=f"r{i}", source="t", images=[im],
               conversation=[{"role": "user", "content": "<image>\nDescribe."},
                             {"role": "assistant", "content": "A red circle."}])
        for i, im in enumerate(images)
    ]  # fmt: skip
    step.set_sink(lambda *a: None)
    list(step.run(records))
    assert sorted(calls) == images  # scored and asked about, decoded once each


def test_vision_cache_one_vit_pass_per_image_same_numbers(world_and_model):
    """With a VisionCache, scoring a caption and then asking two questions about the same images sends each image
    through the ViT once (counted at the vision tower), and the scores and answers equal the uncached path's."""
    import torch
    from PIL import Image

    from sailvl.data.processor import SailVLProcessor
    from sailvl.infer import GenRequest, generate, score_answers
    from sailvl.infer.vision_cache import VisionCache
    from sailvl.model import load_model

    root, model_dir = world_and_model
    model, processor = load_model(model_dir, device="cpu"), SailVLProcessor.from_pretrained(model_dir)
    tower_calls = []
    model.model.vision_tower.register_forward_hook(
        lambda m, a, o: tower_calls.append(len(o.last_hidden_state))
    )
    paths = sorted((root / "world" / "images").glob("*.png"))[:3]
    images = [Image.open(p).convert("RGB") for p in paths]
    # Two images in one prompt (the multi-image tile cap applies) and a text-only prompt among them.
    describe = [GenRequest(images=[im], question="<image>\nDescribe the image in detail.") for im in images]
    describe.append(GenRequest(images=images[:2], question="<image>\n<image>\nCompare."))
    describe.append(GenRequest(question="Say something."))
    answers = ["A red circle.", "Two blue squares on grey.", "x", "They differ.", "Hello."]
    follow = [GenRequest(images=r.images, question=r.question.replace("Describe", "Rate")) for r in describe]

    plain_scores = score_answers(model, processor, describe, answers, batch_size=2)
    plain_answers = generate(model, processor, follow, max_new_tokens=5, batch_size=3)
    plain_calls = len(tower_calls)
    tower_calls.clear()
    cache = VisionCache(capacity=16)
    cached_scores = score_answers(model, processor, describe, answers, batch_size=2, cache=cache)
    calls_after_scoring = len(tower_calls)
    cached_answers = generate(model, processor, follow, max_new_tokens=5, batch_size=3, cache=cache)

    assert cached_answers == plain_answers
    for a, b in zip(cached_scores, plain_scores, strict=True):
        assert a.tokens == b.tokens
        assert torch.allclose(a.logprobs, b.logprobs, atol=1e-4) and torch.allclose(
            a.margins, b.margins, atol=1e-4
        )
    # One ViT pass per distinct (image, tile limit): the two-image prompt reuses the single-image tiles unless the
    # multi-image cap lowers its limit.
    prompts = [[images[0]], [images[1]], [images[2]], images[:2]]
    distinct = {(id(im), processor.tile_limit(len(ims), None)): im for ims in prompts for im in ims}
    assert cache.vit_images == len(distinct)
    assert len(tower_calls) == calls_after_scoring < plain_calls  # the questions reused the scored images
    assert sum(tower_calls) == sum(
        len(processor.tile_image(im, limit)) for (_, limit), im in distinct.items()
    )
    # A cache smaller than one call's images, and one tile per ViT forward, give the same numbers.
    small = score_answers(
        model, processor, describe, answers, batch_size=5, cache=VisionCache(1, vit_batch_tiles=1)
    )
    assert all(
        torch.allclose(a.margins, b.margins, atol=1e-4) for a, b in zip(small, plain_scores, strict=True)
    )
