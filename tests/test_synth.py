"""Tests of the synthetic world: files, schema, determinism, ground truth, judge negatives, TSV benchmarks."""

import base64
import csv
import io
import json
import random

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sailvl.errors import SailvlError
from sailvl.synth import generate_world
from sailvl.synth.bench import MCQ_COLUMNS, QA_COLUMNS
from sailvl.synth.captions import detailed_caption
from sailvl.synth.digits import sample_digits_scene, split_indices
from sailvl.synth.judge import corrupt_scene
from sailvl.synth.qa import TASKS, make_qa
from sailvl.synth.render import KINDS, render_scene, sample_scene
from sailvl.synth.scenes import COLOURS, SHAPES, sample_shapes_scene


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(out, n=60, seed=7, n_bench=42)
    return out, summary


def _jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_world_files_and_counts(world):
    out, summary = world
    assert len(list((out / "images").glob("*.png"))) == 60
    for name in ("pretrain.jsonl", "sft.jsonl", "judge.jsonl", "README.md", "world.json"):
        assert (out / name).is_file()
    assert {p.name for p in (out / "bench").glob("*.tsv")} == {
        "synth_mcq.tsv",
        "synth_yesno.tsv",
        "synth_vqa.tsv",
        "synth_ocr.tsv",
    }
    readme = (out / "README.md").read_text()
    assert f"{summary['sft']} instruction samples" in readme and "synth_yesno.tsv" in readme
    assert json.loads((out / "world.json").read_text()) == summary


def test_jsonl_records_follow_the_conversation_schema(world):
    out, _ = world
    for name in ("pretrain.jsonl", "sft.jsonl", "judge.jsonl"):
        records = _jsonl(out / name)
        assert len({r["id"] for r in records}) == len(records)
        for r in records:
            assert (out / r["image"]).is_file()
            turns = r["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
            assert turns[0]["value"].startswith("<image>\n")
            assert all(t["value"] for t in turns)
    pretrain = _jsonl(out / "pretrain.jsonl")
    types = [r["caption_type"] for r in pretrain]
    assert types.count("alt") == types.count("detailed") == 60
    detailed = [r["conversations"][1]["value"] for r in pretrain if r["caption_type"] == "detailed"]
    alts = [r["conversations"][1]["value"] for r in pretrain if r["caption_type"] == "alt"]
    assert sum(map(len, detailed)) > 3 * sum(map(len, alts))  # gold captions are much richer than alt-text


def test_sft_metadata_supports_a_curriculum(world):
    out, _ = world
    sft = _jsonl(out / "sft.jsonl")
    assert {r["task"] for r in sft} <= set(TASKS) | {"general"}
    assert {r["difficulty"] for r in sft} == {1, 2, 3}
    for r in sft:
        assert 1.0 <= r["complexity"] <= 5.0 and 1.0 <= r["relevance"] <= 5.0
        assert (r["relevance"] < 3) == r["weak_relevance"]
    by_level = {d: [r["complexity"] for r in sft if r["difficulty"] == d] for d in (1, 3)}
    assert sum(by_level[3]) / len(by_level[3]) > sum(by_level[1]) / len(by_level[1])
    mcq = [r for r in sft if r["format"] == "mcq"]
    assert mcq and all(r["conversations"][1]["value"] in "ABCD" for r in mcq)


def test_judge_pairs_have_labels_and_one_attribute_negatives(world):
    out, _ = world
    judge = _jsonl(out / "judge.jsonl")
    assert {r["aligned"] for r in judge} == {"yes", "no"}
    assert all(1 <= r["richness"] <= 5 for r in judge)
    corrupted = [r for r in judge if r["caption_source"] == "corrupted"]
    assert corrupted and all(r["aligned"] == "no" and r["corrupted_attribute"] for r in corrupted)
    for r in judge:
        assert r["conversations"][1]["value"] == r["aligned"].capitalize()
        assert r["conversations"][3]["value"] == str(r["richness"])


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    kwargs = dict(n=12, size=112, tasks="colour,digit,chart", n_bench=8)
    a = generate_world(tmp_path / "a", seed=3, **kwargs)
    b = generate_world(tmp_path / "b", seed=3, **kwargs)
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate_world(tmp_path / "c", seed=4, **kwargs)
    assert (tmp_path / "a" / "sft.jsonl").read_bytes() != (tmp_path / "c" / "sft.jsonl").read_bytes()


def test_tsv_benchmarks_load_with_pandas_and_csv(world):
    out, _ = world
    csv.field_size_limit(1 << 30)
    for path in sorted((out / "bench").glob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        columns = MCQ_COLUMNS if path.stem == "synth_mcq" else QA_COLUMNS
        assert list(frame.columns) == columns
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert len(rows) == len(frame) > 0
        assert [int(r["index"]) for r in rows] == list(range(len(rows)))
        for row in rows[:10]:
            image = Image.open(io.BytesIO(base64.b64decode(row["image"])))
            assert image.format == "PNG" and image.size == (112, 112)
        if path.stem == "synth_mcq":
            for row in rows:
                options = [row[k] for k in "ABCD"]
                assert len(set(options)) == 4 and row["answer"] in "ABCD"
        if path.stem == "synth_yesno":
            answers = [r["answer"] for r in rows]
            assert set(answers) == {"Yes", "No"} and abs(answers.count("Yes") - answers.count("No")) <= 6
    vqa = pd.read_csv(out / "bench" / "synth_vqa.tsv", sep="\t")
    assert set(vqa["category"]) == {"colour", "shape", "count", "position", "digit", "ocr", "chart"}
    # The image shows its answer: every colour question's image has pixels of the answer colour (measured: at
    # least 189 of 12544 in this world), so a blank or mismatched image fails.
    colour_rows = vqa[vqa["category"] == "colour"]
    assert len(colour_rows) == 6
    for _, row in colour_rows.iterrows():
        image = Image.open(io.BytesIO(base64.b64decode(row["image"]))).convert("RGB")
        pixels = np.asarray(image, dtype=np.int16)
        near = (np.abs(pixels - np.array(COLOURS[row["answer"]])) <= 14).all(axis=-1)
        assert near.sum() >= 100, (row["question"], row["answer"], int(near.sum()))


def test_digit_split_is_held_out():
    train, test = set(split_indices("train")), set(split_indices("test"))
    assert train and test and not train & test and len(train) + len(test) == 1797
    rng = random.Random(0)
    for _ in range(30):
        assert all(d.index in test for d in sample_digits_scene(rng, "test").digits)
        assert all(d.index in train for d in sample_digits_scene(rng, "train").digits)


@pytest.mark.parametrize("size", [112, 224, 448])
def test_every_kind_renders_at_each_size(size):
    for k, kind in enumerate(KINDS):
        img = render_scene(sample_scene(random.Random(k), kind), size)
        assert img.size == (size, size) and img.mode == "RGB"
        assert len(img.getcolors(maxcolors=1 << 20)) > 2  # something was drawn on the background


def test_rendered_colour_matches_the_ground_truth():
    for seed in range(20):
        scene = sample_shapes_scene(random.Random(seed), min_objects=1, max_objects=1)
        obj = scene.objects[0]
        pixel = render_scene(scene, 112).getpixel((round(obj.cx * 112), round(obj.cy * 112)))
        base = COLOURS[obj.colour]
        assert max(abs(p - b) for p, b in zip(pixel, base, strict=True)) <= 14, (obj, pixel)


def test_captions_and_answers_follow_the_scene():
    for seed in range(30):
        rng = random.Random(seed)
        scene = sample_shapes_scene(rng)
        caption = detailed_caption(scene, rng)
        for obj in scene.objects:
            assert obj.name in caption
        qa = make_qa(scene, "colour", rng)
        assert qa.answer in {o.colour for o in scene.objects}
        qa = make_qa(scene, "shape", rng)
        assert qa.answer in SHAPES
        count = make_qa(scene, "count", rng)
        assert count.answer.isdigit() and int(count.answer) <= len(scene.objects)
        assert make_qa(scene, "digit", rng) is None  # a shapes scene has no digit question


def test_corruption_changes_exactly_one_attribute():
    for seed in range(40):
        rng = random.Random(seed)
        scene = sample_shapes_scene(rng, min_objects=2)
        bad, attribute = corrupt_scene(scene, rng)
        if attribute == "count":
            assert len(bad.objects) == len(scene.objects) - 1
            continue
        before = sorted((o.colour, o.shape, o.row, o.col) for o in scene.objects)
        after = sorted((o.colour, o.shape, o.row, o.col) for o in bad.objects)
        changed = [(a, b) for a, b in zip(sorted(before), sorted(after), strict=True) if a != b]
        assert len(set(before) - set(after)) == 1, (attribute, changed)


def test_user_mistakes_raise_clear_errors(tmp_path):
    with pytest.raises(SailvlError, match="unknown synth task"):
        generate_world(tmp_path / "w", n=2, seed=0, tasks=["colour", "smell"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    with pytest.raises(SailvlError, match="not empty"):
        generate_world(tmp_path / "foreign", n=2, seed=0)
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "keep me"


def test_cli_writes_a_world_with_only_the_requested_tasks(tmp_path, capsys):
    from sailvl.cli import main

    main(
        [
            "synth",
            "--out",
            str(tmp_path / "w"),
            "--n",
            "10",
            "--seed",
            "1",
            "--tasks",
            "ocr",
            "--n-bench",
            "6",
        ]
    )
    assert "wrote 10 images" in capsys.readouterr().out
    sft = _jsonl(tmp_path / "w" / "sft.jsonl")
    assert {r["task"] for r in sft} <= {"ocr", "general"}
    assert {p.stem for p in (tmp_path / "w" / "bench").glob("*.tsv")} == {
        "synth_mcq",
        "synth_yesno",
        "synth_vqa",
        "synth_ocr",
    }


def test_tiny_model_dir_loads_and_runs_a_training_sample(world, tmp_path):
    import torch

    from sailvl.data.processor import SailVLProcessor
    from sailvl.model import load_model
    from sailvl.synth.tiny_model import make_tiny_model_dir

    out, _ = world
    model_dir = make_tiny_model_dir(out, tmp_path / "tiny", seed=0)
    model = load_model(model_dir)
    processor = SailVLProcessor.from_pretrained(model_dir)
    assert processor.tile_size == 112 and len(processor.tokenizer) == model.config.text_config.vocab_size
    record = _jsonl(out / "sft.jsonl")[0]
    roles = {"human": "user", "gpt": "assistant"}
    conversation = [{"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]]
    sample = processor.encode_sample(conversation, [Image.open(out / record["image"]).convert("RGB")])
    with torch.no_grad():
        loss = model(
            input_ids=sample.input_ids[None], pixel_values=sample.pixel_values, labels=sample.labels[None]
        ).loss
    assert torch.isfinite(loss) and loss.item() > 0
    # The world's words are single tokens of the trained vocabulary, so answers stay short.
    assert len(processor.tokenizer.tokenize(" purple")) == 1


def test_easy_world_has_one_large_shape_per_image(tmp_path):
    from sailvl.synth.scenes import SIZE_RADIUS

    for seed in range(20):
        scene = sample_shapes_scene(random.Random(seed), 1, 1, object_scale=2.0)
        (obj,) = scene.objects
        radius = SIZE_RADIUS[obj.size] * 2.0
        assert radius <= obj.cx <= 1 - radius and radius <= obj.cy <= 1 - radius
        assert int(obj.cx * 3) == obj.col and int(obj.cy * 3) == obj.row
    with pytest.raises(SailvlError, match="object_scale"):
        generate_world(tmp_path / "w", n=2, seed=0, object_scale=3.0)
    with pytest.raises(SailvlError, match="max_objects"):
        generate_world(tmp_path / "w", n=2, seed=0, max_objects=1)  # position questions need two shapes


def test_kind_weights_change_the_scene_mix(tmp_path):
    tasks = ["colour", "shape", "digit"]
    default = generate_world(tmp_path / "a", n=200, seed=0, tasks=tasks, n_bench=10, max_objects=1)
    heavy = generate_world(tmp_path / "b", n=200, seed=0, tasks=tasks, n_bench=10, max_objects=1,
                           kind_weights="digits=8")  # fmt: skip
    assert default["kind_weights"] == {"shapes": 4.0, "digits": 1.5}
    assert heavy["kind_weights"] == {"shapes": 4.0, "digits": 8.0}
    share = lambda s: s["kinds"]["digits"] / s["images"]  # noqa: E731
    assert share(default) < 0.4 < 0.55 < share(heavy)
    assert "--kind-weights shapes=4,digits=8" in (tmp_path / "b" / "README.md").read_text()
    for bad, match in (("digits", "look like"), ("smell=2", "unknown scene kind"), ("digits=-1", "positive")):
        with pytest.raises(SailvlError, match=match):
            generate_world(tmp_path / "c", n=2, seed=0, kind_weights=bad)


def test_digit_jitter_zero_fixes_placement_and_one_keeps_the_default_scenes(tmp_path):
    for seed in range(20):
        default = sample_digits_scene(random.Random(seed), "train")
        assert sample_digits_scene(random.Random(seed), "train", jitter=1.0) == default
        fixed = sample_digits_scene(random.Random(seed), "train", jitter=0.0)
        # Same digits, ink and sides; only the offsets and the size spread are gone.
        assert [(d.index, d.colour, d.side) for d in fixed.digits] == [
            (d.index, d.colour, d.side) for d in default.digits
        ]
        for d in fixed.digits:
            assert d.cy == 0.5 and d.cx == {"center": 0.5, "left": 0.27, "right": 0.73}[d.side]
            assert d.height == pytest.approx(0.65 if d.side == "center" else 0.44)
    summary = generate_world(tmp_path / "w", n=20, seed=0, tasks=["digit"], n_bench=5, digit_jitter=0.0)
    assert summary["digit_jitter"] == 0.0
    assert "--digit-jitter 0 " in (tmp_path / "w" / "README.md").read_text()
    with pytest.raises(SailvlError, match="digit_jitter"):
        generate_world(tmp_path / "x", n=2, seed=0, digit_jitter=1.5)


def test_yesno_pairs_ask_each_question_true_and_false_on_the_same_image(tmp_path):
    tasks = ["colour", "shape", "digit"]
    plain = generate_world(tmp_path / "a", n=60, seed=0, tasks=tasks, n_bench=5, max_objects=1)
    paired = generate_world(tmp_path / "b", n=60, seed=0, tasks=tasks, n_bench=5, max_objects=1,
                            yesno_prob=1.0, yesno_pairs=True)  # fmt: skip
    rows = [r for r in _jsonl(tmp_path / "b" / "sft.jsonl") if r["format"] == "yesno"]
    by_image: dict[str, list[dict]] = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    assert len(by_image) == 60  # every image gets a pair
    for pair in by_image.values():
        assert sorted(r["conversations"][1]["value"] for r in pair) == ["No", "Yes"]
        assert pair[0]["task"] == pair[1]["task"]
        assert pair[0]["conversations"][0]["value"] != pair[1]["conversations"][0]["value"]
    plain_yesno = sum(r["format"] == "yesno" for r in _jsonl(tmp_path / "a" / "sft.jsonl"))
    assert plain_yesno < 30 and paired["yesno_pairs"] and not plain["yesno_pairs"]
    with pytest.raises(SailvlError, match="yesno_prob"):
        generate_world(tmp_path / "c", n=2, seed=0, yesno_prob=2.0)


def test_style_weights_change_the_answer_styles(tmp_path):
    tasks = ["colour", "shape"]
    short = generate_world(tmp_path / "a", n=80, seed=0, tasks=tasks, n_bench=5, max_objects=1,
                           style_weights="short=1,mcq=0,open=0", yesno_prob=0.0)  # fmt: skip
    formats = {r["format"] for r in _jsonl(tmp_path / "a" / "sft.jsonl") if not r["weak_relevance"]}
    assert formats == {"short"} and short["style_weights"] == {"short": 1.0, "mcq": 0.0, "open": 0.0}
    assert "--style-weights short=1,mcq=0,open=0 --yesno-prob 0" in (tmp_path / "a" / "README.md").read_text()
    for bad, match in (("mcq=-1", "zero or positive"), ("short=0,mcq=0,open=0", "at least one"),
                       ("essay=1", "unknown answer style")):  # fmt: skip
        with pytest.raises(SailvlError, match=match):
            generate_world(tmp_path / "c", n=2, seed=0, style_weights=bad)
    with pytest.raises(SailvlError, match="no scene kind"):
        generate_world(tmp_path / "c", n=2, seed=0, tasks=["colour"], kind_weights="shapes=0")


def test_mcq_answers_as_option_text_then_letter(tmp_path):
    from sailvl.synth.formats import prompt_options

    kwargs = dict(n=60, seed=0, tasks=["colour", "shape"], n_bench=5, max_objects=1, style_weights="mcq=1")
    letter = generate_world(tmp_path / "a", **kwargs)
    text = generate_world(tmp_path / "b", **kwargs, mcq_answer="text-letter")
    assert (letter["mcq_answer"], text["mcq_answer"]) == ("letter", "text-letter")
    assert "--mcq-answer text-letter" in (tmp_path / "b" / "README.md").read_text()
    assert "--mcq-answer" not in (tmp_path / "a" / "README.md").read_text()
    a, b = _jsonl(tmp_path / "a" / "sft.jsonl"), _jsonl(tmp_path / "b" / "sft.jsonl")
    mcq = [(x, y) for x, y in zip(a, b, strict=True) if x["format"] == "mcq"]
    assert len(mcq) > 20
    for x, y in mcq:  # same questions and options; only the written answer differs
        prompt = x["conversations"][0]["value"]
        assert y["conversations"][0]["value"] == prompt
        right = x["conversations"][1]["value"]
        assert y["conversations"][1]["value"] == f"{prompt_options(prompt)[right]} {right}"
    # Benchmarks stay letter-scored whatever the training answers look like.
    assert (tmp_path / "a" / "bench" / "synth_mcq.tsv").read_bytes() == (
        tmp_path / "b" / "bench" / "synth_mcq.tsv"
    ).read_bytes()
    with pytest.raises(SailvlError, match="mcq_answer"):
        generate_world(tmp_path / "c", n=2, seed=0, mcq_answer="letters")


def test_yesno_answers_as_what_the_image_shows_then_the_word(tmp_path):
    import re

    from sailvl.eval.matching import yes_no_in

    kwargs = dict(n=60, seed=0, tasks=["colour", "shape", "digit"], n_bench=5, max_objects=1, yesno_prob=1.0,
                  yesno_pairs=True, kind_weights="digits=2")  # fmt: skip
    word = generate_world(tmp_path / "a", **kwargs)
    seen = generate_world(tmp_path / "b", **kwargs, yesno_answer="seen-word")
    # The key is written only when set, so the world.json of earlier worlds is unchanged.
    assert "yesno_answer" not in word and seen["yesno_answer"] == "seen-word"
    assert "--yesno-answer seen-word" in (tmp_path / "b" / "README.md").read_text()
    assert "--yesno-answer" not in (tmp_path / "a" / "README.md").read_text()
    a, b = _jsonl(tmp_path / "a" / "sft.jsonl"), _jsonl(tmp_path / "b" / "sft.jsonl")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x["format"] == "yesno"]
    assert {x["task"] for x, _ in pairs} == {"colour", "shape", "digit"}
    # The asked attribute, read back from the question: "Is the shape red?", "Is there a red star ...?",
    # "Is the handwritten digit a 7?".
    asked = re.compile(
        r"^(?:Is the shape (\w+)\?|Is there a (\w+ \w+) in the image\?|Is the handwritten digit(?: on the \w+)? a (\d)\?)"
    )
    for x, y in pairs:
        question = x["conversations"][0]["value"].removeprefix("<image>\n")
        assert y["conversations"][0]["value"] == x["conversations"][0]["value"]
        word_answer, seen_answer = x["conversations"][1]["value"], y["conversations"][1]["value"]
        shown, _, last = seen_answer.rpartition(" ")
        assert last == word_answer and yes_no_in(seen_answer) == word_answer  # the benchmark reads the word
        attribute = next(g for g in asked.match(question).groups() if g)
        assert (shown == attribute) == (word_answer == "Yes"), (question, seen_answer)
        if x["task"] == "shape":  # the negative names the object of the asked colour, with its real shape
            assert shown.split()[0] == attribute.split()[0]
    rejected = {r["id"]: r["rejected"] for r in _jsonl(tmp_path / "b" / "preference.jsonl")}
    for _, y in pairs:
        shown, _, last = y["conversations"][1]["value"].rpartition(" ")
        other = "No" if last == "Yes" else "Yes"
        assert rejected[y["id"]] == f"{shown} {other}"  # the same description, the other word
    with pytest.raises(SailvlError, match="yesno_answer"):
        generate_world(tmp_path / "c", n=2, seed=0, yesno_answer="sentence")
