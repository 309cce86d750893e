"""The pretrained tiny base (sailvl.experiment.pretrained): its text corpus, gate, parts and cache."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import yaml

from sailvl.errors import SailvlError
from sailvl.experiment import pretrained
from sailvl.experiment.pretrained import (
    QUICK,
    answer_correct,
    build_base,
    mcq_text_letter,
    text_records,
)
from sailvl.model import load_model
from sailvl.synth import generate_world


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "seed-3"
    return out, build_base(3, out, QUICK)


def test_text_records_put_the_caption_where_the_image_was(tmp_path):
    world = tmp_path / "world"
    generate_world(world, 40, 11)
    records = list(text_records(world))
    captions = {}
    for line in (world / "pretrain.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["caption_type"] == "detailed":
            captions[r["image"]] = r["conversations"][1]["value"]
    sft = [json.loads(line) for line in (world / "sft.jsonl").read_text().splitlines()]
    by_id = {f"text-{r['id']}": r for r in sft}
    assert {r["format"] for r in records} >= {"short", "mcq", "yesno", "caption"}
    for record in records:
        source = by_id[record["id"]]
        question, answer = (t["value"] for t in record["conversations"])
        assert "<image>" not in question
        if record["format"] == "caption":
            assert answer == captions[source["image"]]
        else:
            assert question.startswith(f"Description: {captions[source['image']]}\n")
        if record["format"] == "mcq":
            letter = source["conversations"][1]["value"]
            assert answer.endswith(f" {letter}") and f"\n{letter}. {answer[:-2]}\n" in question
    # A world whose MCQ answers are already the option text, then the letter, keeps them as they are.
    generate_world(tmp_path / "text-letter", 40, 11, mcq_answer="text-letter")
    same = {r["id"]: r for r in text_records(tmp_path / "text-letter")}
    mcq = [r for r in records if r["format"] == "mcq"]
    assert mcq and all(same[r["id"]]["conversations"] == r["conversations"] for r in mcq)


def test_shuffled_captions_keep_the_words_and_break_every_pairing(tmp_path):
    """The caption experiments' negative control: the same captions, none left on its own image."""
    from collections import Counter

    from sailvl.experiment.pretrained import write_gold_captions

    world = tmp_path / "world"
    generate_world(world, 30, 12)
    gold = [json.loads(x) for x in write_gold_captions(world, tmp_path / "g.jsonl").read_text().splitlines()]
    path = write_gold_captions(world, tmp_path / "s.jsonl", shuffle_seed=5)
    shuffled = [json.loads(x) for x in path.read_text().splitlines()]
    text = lambda records: [r["conversations"][1]["value"] for r in records]  # noqa: E731
    assert [r["image"] for r in shuffled] == [r["image"] for r in gold] and len(gold) == 30
    assert Counter(text(shuffled)) == Counter(text(gold))
    assert all(
        s != g for s, g in zip(text(shuffled), text(gold), strict=True)
    )  # captions are unique per image
    again = write_gold_captions(world, tmp_path / "s2.jsonl", shuffle_seed=5).read_text()
    assert again == path.read_text()  # the seed fixes the pairing


def test_short_gold_captions_are_the_true_alt_texts_and_shuffle_the_same_way(tmp_path):
    """recaption's control pair: the alt-texts right about their image, and the same texts deranged."""
    from collections import Counter

    from sailvl.experiment.pretrained import write_gold_captions

    world = tmp_path / "world"
    generate_world(world, 60, 12)
    pool = [json.loads(x) for x in (world / "pretrain.jsonl").read_text().splitlines()]
    alt = [r for r in pool if r["caption_type"] == "alt"]
    true = [r for r in alt if r["alt_wrong_attribute"] is None]
    assert 0 < len(true) < len(alt)  # the world writes some wrong alt-texts: they must be left out
    gold = [
        json.loads(x)
        for x in write_gold_captions(world, tmp_path / "g.jsonl", short=True).read_text().splitlines()
    ]
    assert gold == true
    shuffled = [
        json.loads(x)
        for x in write_gold_captions(world, tmp_path / "s.jsonl", shuffle_seed=5, short=True)
        .read_text()
        .splitlines()
    ]
    text = lambda records: [r["conversations"][1]["value"] for r in records]  # noqa: E731
    assert [r["image"] for r in shuffled] == [r["image"] for r in gold]
    assert Counter(text(shuffled)) == Counter(text(gold))
    # Short captions repeat ("handwritten 5"), so a few may land on an image they fit; most must not.
    assert sum(s == g for s, g in zip(text(shuffled), text(gold), strict=True)) < len(gold) / 2


def test_mcq_answer_names_the_option_then_its_letter():
    prompt = "What shape?\nA. circle\nB. star\nC. bar chart\nD. square\nAnswer with the option's letter."
    assert mcq_text_letter(prompt, "C") == "bar chart C"
    with pytest.raises(SailvlError, match="names no option"):
        mcq_text_letter(prompt, "E")


def test_gate_holds_every_task_of_a_style():
    gate = {
        "mcq": {"accuracy": 0.71, "items": 176, "per_task": {"colour": {"accuracy": 0.25, "items": 56},
                                                            "shape": {"accuracy": 1.0, "items": 64}}},
        "short": {"accuracy": 0.99, "items": 300, "per_task": {"colour": {"accuracy": 0.98, "items": 100}}},
    }  # fmt: skip
    # The mean passes the MCQ minimum, but colour MCQ sits at chance: the base is refused.
    assert pretrained.gate_misses(gate, {"mcq": 0.5, "short": 0.8}) == {"mcq/colour": 0.25}
    assert pretrained.gate_misses(gate, {"mcq": 0.75}) == {"mcq": 0.71, "mcq/colour": 0.25}
    assert pretrained.gate_misses(gate, {}) == {}
    groups = [[1, 2, 3], [4], [5, 6]]
    assert pretrained._round_robin(groups, 5) == [1, 4, 5, 2, 6]


def test_gate_from_the_command_line():
    assert pretrained.parse_gate("short=0.8, mcq=0.5") == {"short": 0.8, "mcq": 0.5}
    assert pretrained.parse_gate("") == {}
    for bad in ("open=0.5", "short=80", "mcq"):
        with pytest.raises(SailvlError, match="expected STYLE=MIN"):
            pretrained.parse_gate(bad)


def test_answer_correct_reads_mcq_by_letter_and_the_rest_exactly():
    assert answer_correct("mcq", "star B", "square B")  # the letter is what the benchmark scores
    assert not answer_correct("mcq", "square D", "square B")
    assert answer_correct("short", "Red.", "red") and not answer_correct("short", "dark red", "red")
    assert answer_correct("yesno", "Yes", "Yes") and not answer_correct("yesno", "No", "Yes")


def test_base_has_the_text_llm_and_the_captioning_vit(base):
    out, model_dir = base
    manifest = json.loads((out / "base.json").read_text())
    assert manifest["base_world_seed"] == pretrained.BASE_SEED + 3 and manifest["text_records"] > 0
    assert set(manifest["gate_result"]) == {"short", "mcq", "yesno"}
    for scores in manifest["gate_result"].values():  # scored per task too, and the tasks make up the style
        assert sum(t["items"] for t in scores["per_task"].values()) == scores["items"]
        assert set(scores["per_task"]) <= set(pretrained.GATE_TASKS)  # trivia ("general") is not gated
    model = load_model(model_dir)
    stages = f"text-colour{QUICK.colour_steps}-text{QUICK.text_steps}-settle{QUICK.settle_steps}"
    assert manifest["text_run"] == stages
    # Without a lookup stage the settings read as before it existed, so bases cached then still match.
    assert not any(k.startswith("lookup_") for k in manifest["size"])
    # Each text stage starts from the export of the stage before it, on its own data.
    chain = [("text-colour3", "init", "colour-drills.jsonl"),
             ("text-colour3-text6", "runs/text-colour3/text-lm/export", "text-drills.jsonl"),
             (stages, "runs/text-colour3-text6/text-lm/export", "text-drills.jsonl")]  # fmt: skip
    for run, start, data in chain:
        recipe = yaml.safe_load((out / "runs" / run / "recipe.yaml").read_text())
        assert recipe["vars"]["model_dir"] == str(out / start) and recipe["vars"]["data"] == str(out / data)
    colour = [json.loads(x) for x in (out / "colour-drills.jsonl").read_text().splitlines()]
    assert len(colour) == QUICK.colour_drills and {r["task"] for r in colour} == {"colour"}
    mixed = (out / "text-drills.jsonl").read_text().splitlines()
    assert len(mixed) == manifest["text_records"] + QUICK.mix_drills
    llm = load_model(out / "runs" / stages / "text-lm" / "export")
    vit = load_model(out / "runs" / f"vit-{QUICK.vit_steps}" / "captioner" / "export")
    init = load_model(out / "init")
    parts = {
        "vision": lambda m: m.model.vision_tower.state_dict(),
        "projector": lambda m: m.model.multi_modal_projector.state_dict(),
        "llm": lambda m: m.model.language_model.state_dict(),
    }
    same = {
        (part, name): all(torch.equal(v, get(other)[k]) for k, v in get(model).items())
        for part, get in parts.items()
        for name, other in (("llm", llm), ("vit", vit), ("init", init))
    }
    # The LLM is the text run's; the vision tower and the projector are the captioning run's.
    assert same["llm", "llm"] and not same["llm", "init"] and not same["llm", "vit"]
    assert same["vision", "vit"] and not same["vision", "init"]
    assert same["projector", "vit"] and not same["projector", "init"]


def test_assemble_takes_the_projector_only_when_asked(base, tmp_path):
    """`sailvl experiment assemble` (vit-transfer's arm starts): the vision tower always, its projector with
    --projector; the LLM stays the first model's."""
    from sailvl.cli import main

    out, model_dir = base
    for flag in ([], ["--projector"]):
        target = tmp_path / f"assembled{len(flag)}"
        main(["experiment", "assemble", str(model_dir), str(out / "init"), str(target), *flag])
        got, init, model = load_model(target), load_model(out / "init"), load_model(model_dir)

        def equal(part, a, b):
            pa, pb = (getattr(m.model, part).state_dict() for m in (a, b))
            return all(torch.equal(v, pb[k]) for k, v in pa.items())

        assert equal("vision_tower", got, init) and equal("language_model", got, model)
        assert equal("multi_modal_projector", got, init) == bool(flag)
        assert equal("multi_modal_projector", got, model) == (not flag)


def test_rebuild_reads_the_cache_and_other_settings_are_refused(base, monkeypatch):
    out, model_dir = base
    monkeypatch.setattr(pretrained, "_train", lambda *a, **k: pytest.fail("a cached base trained again"))
    assert build_base(3, out, QUICK) == model_dir
    with pytest.raises(SailvlError, match="other settings"):
        build_base(3, out, replace(QUICK, text_steps=QUICK.text_steps + 1))


def test_gate_failure_stops_the_build_and_a_longer_budget_trains_anew(tmp_path):
    size = replace(QUICK, gate={"short": 0.99})  # a 6-step LLM answers nothing right
    with pytest.raises(SailvlError, match="misses its gate.*short"):
        build_base(4, tmp_path / "b", size)
    assert not (tmp_path / "b" / "base.json").exists() and (tmp_path / "b" / "gate-failed.json").is_file()
    assert not (tmp_path / "b" / "model").exists()
    # Retrying with more steps trains a new LLM rather than resuming the failed one's finished run.
    # The colour stage is shared; the later stages (a lookup-drill stage, then weight decay) are named by it.
    more = replace(
        size, text_steps=size.text_steps + 2, gate={}, weight_decay=0.1, lookup_steps=2, lookup_drills=12
    )
    build_base(4, tmp_path / "b", more)
    assert (tmp_path / "b" / "base.json").is_file() and not (tmp_path / "b" / "gate-failed.json").exists()
    runs = sorted(p.name for p in (tmp_path / "b" / "runs").iterdir())
    colour, text = f"text-colour{size.colour_steps}", f"text{more.text_steps}wd0.1"
    lookup = f"{colour}-lookup2"
    assert runs == sorted([colour, f"{colour}-text{size.text_steps}", f"{colour}-text{size.text_steps}-settle{size.settle_steps}",
                    lookup, f"{lookup}-{text}", f"{lookup}-{text}-settle{size.settle_steps}wd0.1",
                    f"vit-{size.vit_steps}"])  # fmt: skip
    decay = {run: yaml.safe_load((tmp_path / "b" / "runs" / run / "recipe.yaml").read_text())["stages"][0]["weight_decay"]
             for run in runs[:-1]}  # fmt: skip
    assert decay == {run: 0.1 if "wd" in run else 0.0 for run in runs[:-1]}
    # The lookup stage starts from the colour stage, on drills of every task (colour as a predicate).
    recipe = yaml.safe_load((tmp_path / "b" / "runs" / lookup / "recipe.yaml").read_text())
    assert recipe["vars"]["model_dir"] == str(tmp_path / "b" / "runs" / colour / "text-lm" / "export")
    drilled = [json.loads(x) for x in (tmp_path / "b" / "lookup-drills.jsonl").read_text().splitlines()]
    assert len(drilled) == 12 and {r["task"] for r in drilled} == {"colour", "shape", "digit"}
    assert json.loads((tmp_path / "b" / "base.json").read_text())["size"]["lookup_steps"] == 2


def test_cli_reads_the_cached_base_and_names_a_settings_clash(base, capsys):
    from sailvl.cli import main

    out, model_dir = base
    main(["experiment", "base", "--quick", "--seed", "3", "--out", str(out)])
    assert f"base model: {model_dir}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "base", "--quick", "--seed", "3", "--out", str(out), "--text-steps", "7"])
    assert exit_info.value.code == 2 and "other settings" in capsys.readouterr().err
