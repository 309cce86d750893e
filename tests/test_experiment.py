"""`sailvl experiment`: plans are real CLI commands, aggregation and verdicts on known numbers, report pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sailvl.demo.runner import Command
from sailvl.experiment import curriculum, recaption, scaling, vit_transfer
from sailvl.experiment.base import SUMMARY, SeedDirs, collect, mean_std, run_metrics
from sailvl.experiment.registry import EXPERIMENTS, get_experiment
from sailvl.experiment.report import write_experiment_report
from sailvl.experiment.stats import WORDS


def _results(open_answer: float, samples: int = 0, tokens: int = 0) -> dict:
    per_cat = {
        "colour": {"accuracy": open_answer + 10, "n": 10},
        "digit": {"accuracy": open_answer - 10, "n": 10},
    }
    return {
        "average": (open_answer + 50 + 50) / 3,
        "samples_seen": samples,
        "tokens_seen": tokens,
        "benchmarks": {
            "synth_vqa": {"score": open_answer, "per_category": per_cat},
            "synth_mcq": {"score": 50.0, "per_category": {}},
            "synth_yesno": {"score": 50.0, "per_category": {}},
        },
    }


def _write_eval(root: Path, arm: str, point: str, results: dict) -> None:
    path = root / "eval" / arm / point / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))


def test_every_experiment_plans_real_cli_commands(tmp_path):
    from sailvl.cli import register_commands
    from sailvl.cli.app import app
    from sailvl.cli.experiment import NAMES

    register_commands()
    top = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert set(NAMES) == set(EXPERIMENTS)
    for name, module in EXPERIMENTS.items():
        for quick in (True, False):
            steps = module.plan(SeedDirs(tmp_path / name), seed=0, quick=quick)
            commands = [s for s in steps if isinstance(s, Command)]
            assert commands[0].args[0] == "synth"
            assert all(c.args[0] in top and c.shell().startswith("sailvl ") for c in commands), name
            assert len({c.log_name for c in commands}) == len(commands)  # one log (and resume marker) each
    assert len(scaling.FULL.grid) >= 5 and all(g % scaling.FULL.grid[0] == 0 for g in scaling.FULL.grid)
    with pytest.raises(Exception, match="known: recaption, curriculum, scaling, vit-transfer"):
        get_experiment("nope")


def test_vit_transfer_arms_bring_the_projector_their_vit_was_trained_with(tmp_path):
    steps = vit_transfer.plan(SeedDirs(tmp_path), seed=0, quick=False, base=tmp_path / "base")
    assembles = [s for s in steps if isinstance(s, Command) and s.args[:2] == ["experiment", "assemble"]]
    starts = {c.args[4].rsplit("/", 1)[-1]: c for c in assembles}
    assert set(starts) == {f"{arm}-start" for arm in ("sailvit-vit", "plain-vit", "random-vit")}
    assert all(c.args[-1] == "--projector" for c in assembles)
    assert starts["random-vit-start"].args[3] == str(tmp_path / "base" / "init")


def test_recaption_readout_aligns_projector_and_llm_on_every_arm(tmp_path):
    """recaption's caption data reaches the LLM (the projector alone did not separate its controls on the dev
    worlds); vit-transfer keeps tiny-readout's projector-only alignment. Two arms' commands differ only in their
    captions and output directory."""
    d = SeedDirs(tmp_path / "seed-0")
    trains = {}
    for arm in recaption.CONTROLS:
        captions = tmp_path / f"{arm}.jsonl"
        captions.write_text(json.dumps({"image": "a.png", "conversations": []}) + "\n")
        commands = recaption._arm_steps(d, arm, captions, tmp_path / "base", recaption.FULL, 0)()
        trains[arm] = [a for c in commands if c.args[:2] == ["train", "tiny-readout"] for a in c.args]
        assert "stages.0.trainable=[projector.*,llm.*]" in trains[arm]
        assert (
            f"stages.0.budget.steps={recaption.ALIGN_STEPS}" in trains[arm]
            and f"stages.1.budget.steps={recaption.SFT_STEPS}" in trains[arm]
        )
    differ = set(trains["gold-short"]) ^ set(trains["shuffled-short"])
    assert len(differ) == 4 and all("shuffled" in a or "gold" in a for a in differ), differ
    vt = vit_transfer.plan(SeedDirs(tmp_path / "vt"), seed=0, quick=False, base=tmp_path / "base")
    vt_trains = [s for s in vt if isinstance(s, Command) and s.args[:2] == ["train", "tiny-readout"]]
    assert vt_trains and not any(a.startswith("stages.0.trainable") for c in vt_trains for a in c.args)


def test_recaption_size_matched_arm_is_the_raw_alt_text_of_the_kept_images(tmp_path):
    """`raw-curated-images` holds the alt-text records (in their order) of exactly the images the curated arm
    kept, read from curation's shard directories; its plan step feeds that file to the arm's readout."""
    alt, kept = tmp_path / "alt", tmp_path / "kept"
    alt.mkdir(), kept.mkdir()

    def record(i: int, text: str) -> str:
        return (
            json.dumps(
                {
                    "id": f"{i}-c0",
                    "images": [f"/w/images/{i:06d}.png"],
                    "conversation": [{"role": "assistant", "content": text}],
                }
            )
            + "\n"
        )

    (alt / "shard-00000.jsonl").write_text("".join(record(i, f"alt {i}") for i in range(4)))
    (alt / "shard-00001.jsonl").write_text("\n" + "".join(record(i, f"alt {i}") for i in range(4, 8)))
    (kept / "shard-00000.jsonl").write_text(record(6, "recaption 6") + record(1, "recaption 1"))
    (kept / "shard-00001.jsonl").write_text(record(3, "recaption 3"))
    out = tmp_path / "matched.jsonl"
    assert recaption.same_images(alt, tmp_path / "none-kept", out) == (0, 0) and out.read_text() == ""
    assert recaption.same_images(alt, kept, out) == (3, 3)
    assert [json.loads(line)["conversation"][0]["content"] for line in out.read_text().splitlines()] == [
        "alt 1",
        "alt 3",
        "alt 6",
    ]
    steps = recaption.plan(SeedDirs(tmp_path / "seed-0"), seed=0, quick=False, base=tmp_path / "base")
    [select] = [s for s in steps if isinstance(s, Command) and s.args[:2] == ["experiment", "same-images"]]
    assert select.args[2:4] == [
        str(tmp_path / "seed-0" / p / "kept") for p in ("curate/alt-text", "curate/recaption")
    ]
    matched = tmp_path / "seed-0" / "curate" / "raw-curated-images.jsonl"
    assert select.args[4] == str(matched)
    matched.parent.mkdir(parents=True)
    matched.write_text(record(1, "alt 1"))
    builds = [s for s in steps if not isinstance(s, Command)]
    assert len(builds) == len(recaption.ARMS)
    third = [a for c in builds[recaption.ARMS.index("raw-curated-images")]() for a in c.args]
    assert f"vars.captions={matched}" in third


def test_scaling_readout_is_one_llm_only_sft_for_every_point(tmp_path):
    """Every scaling point (each grid budget, the unfrozen fork, none) ends with the same SFT of the LLM alone: the
    commands differ only in the model they start from and where they write."""
    steps = scaling.plan(SeedDirs(tmp_path / "seed-0"), seed=0, quick=False, base=tmp_path / "base")
    sfts = [s for s in steps if isinstance(s, Command) and s.args[:2] == ["train", "tiny-readout-sft"]]
    assert len(sfts) == 2 * len(scaling.FULL.grid) + 2
    fixed = set()
    for c in sfts:
        assert "stages.0.trainable=[llm.*]" in c.args
        out = c.args[c.args.index("--out") + 1]
        fixed.add(tuple(a for a in c.args if not a.startswith("vars.model_dir=") and a != out))
    assert len(fixed) == 1, fixed
    aligns = [s for s in steps if isinstance(s, Command) and s.args[:2] == ["train", "tiny-readout-align"]]
    assert {a for c in aligns for a in c.args if a.startswith("stages.0.trainable")} == {
        "stages.0.trainable=[projector.*,llm.*]",
        "stages.0.trainable=[vision.*,projector.*,llm.*]",
    }


def test_curriculum_orders_hold_the_same_questions_in_three_orders(tmp_path):
    """curriculum's arms read the same records once each: the stages in order, all shuffled, or grouped by task;
    their readouts differ only in that file (same alignment, LR schedule and sample budget, file order)."""
    from collections import Counter

    stages = tmp_path / "curriculum"
    stages.mkdir()
    tasks = ("shape", "colour", "digit")
    for k in (1, 2, 3):  # stage k: 4 records of each task
        lines = [json.dumps({"id": f"{k}-{t}-{i}", "metadata": {"task": t}}) for t in tasks for i in range(4)]
        (stages / f"stage-{k}.jsonl").write_text("\n".join(lines) + "\n")
    counts = curriculum.write_orders(stages, tmp_path / "orders", seed=3)
    assert counts == {"curriculum": 36, "mixed": 36, "task-blocked": 36}
    read = {arm: [json.loads(x)["id"] for x in (tmp_path / "orders" / f"{arm}.jsonl").read_text().splitlines()]
            for arm in curriculum.ARMS}  # fmt: skip
    assert (
        all(Counter(ids) == Counter(read["mixed"]) for ids in read.values()) and len(set(read["mixed"])) == 36
    )
    assert [int(i[0]) for i in read["curriculum"]] == sorted(int(i[0]) for i in read["curriculum"])
    assert read["curriculum"][:12] != sorted(read["curriculum"][:12])  # each stage shuffled within
    blocked = [i.split("-")[1] for i in read["task-blocked"]]
    assert blocked == ["colour"] * 12 + ["digit"] * 12 + ["shape"] * 12
    assert len({i[0] for i in read["mixed"][:12]}) > 1  # mixed interleaves the stages
    assert curriculum.write_orders(stages, tmp_path / "again", seed=3) == counts
    assert (tmp_path / "again" / "mixed.jsonl").read_text() == (
        tmp_path / "orders" / "mixed.jsonl"
    ).read_text()
    d = SeedDirs(tmp_path / "seed-0")
    trains = {}
    for arm in curriculum.ARMS:
        [command] = curriculum._readout(d, arm, tmp_path / "m", tmp_path / "c.jsonl", tmp_path / "orders",
                                        curriculum.FULL, 0)()  # fmt: skip
        trains[arm] = command.args
        assert (
            "stages.1.budget.samples=36" in command.args and "stages.1.data.shuffle_block=0" in command.args
        )
    differ = set(trains["mixed"]) ^ set(trains["task-blocked"])
    arms = ("mixed", "task-blocked")
    sources = {f"stages.1.data.sources=[{{path: {tmp_path / 'orders' / arm}.jsonl}}]" for arm in arms}
    assert differ == sources | {str(d.runs / arm) for arm in arms}


def test_dev_readout_script_builds_the_experiments_worlds(tmp_path):
    """scripts/base_readout.py --experiment-world sizes budgets on worlds like the experiments' (WORLD_FLAGS)."""
    import importlib.util

    from sailvl.cli import main
    from sailvl.demo.pipeline import WORLD_FLAGS
    from sailvl.synth import generate_world

    spec = importlib.util.spec_from_file_location("base_readout", Path("scripts/base_readout.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    main(
        ["synth", "--out", str(tmp_path / "cli"), "--n", "24", "--seed", "5", "--n-bench", "12", *WORLD_FLAGS]
    )
    generate_world(tmp_path / "script", 24, 5, n_bench=12, **script.EXPERIMENT_WORLD)
    for name in ("sft.jsonl", "pretrain.jsonl", "bench/synth_vqa.tsv", "bench/synth_mcq.tsv"):
        assert (tmp_path / "cli" / name).read_text() == (tmp_path / "script" / name).read_text(), name


def test_metrics_and_mean_std_over_seeds(tmp_path):
    metrics = run_metrics(_results(40.0))
    assert metrics["open answer"] == 40.0 and metrics["MCQ letter"] == 50.0 and metrics["open:digit"] == 30.0
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "values": [1.0, 3.0]}
    roots = [tmp_path / "seed-0", tmp_path / "seed-1"]
    for root, score in zip(roots, (30.0, 50.0), strict=True):
        _write_eval(root, "a", "p1", _results(score, samples=200))
        _write_eval(root, "a", "p0", _results(score - 20, samples=100))
    arms = collect(roots, lambda results, _: float(results["samples_seen"]))
    assert [p["x"] for p in arms["a"]] == [100.0, 200.0]  # ordered by x, not by name
    assert arms["a"][1]["metrics"]["open answer"]["mean"] == 40.0
    assert arms["a"][1]["metrics"]["open answer"]["values"] == [30.0, 50.0]


def _summary(name: str, arms: dict) -> dict:
    module = get_experiment(name)
    return {"experiment": name, "quick": False, "seeds": [0, 1, 2], "claim": module.CLAIM,
            "x_label": getattr(module, "X_LABEL", None), "arms": arms, "seconds": 60.0, "commands": []}  # fmt: skip


def _point(x: float, mean: float, std: float = 1.0) -> dict:
    return {"x": x, "metrics": {"open answer": {"mean": mean, "std": std, "values": [mean]}}}


def test_verdicts_without_controls_are_insensitive():
    """A verdict is `insensitive` until the experiment's controls separate by 10 points in every seed (it used to
    read `reproduced` / `not reproduced` on uncontrolled numbers): recaption's gold vs shuffled short captions,
    curriculum's mixed vs task-blocked, scaling's largest gold budget vs none (and its shuffled grid must not
    rise)."""
    s = _summary("recaption", {"raw-alt-text": _seeds(1, [30, 31, 32]), "curated-recaptions": _seeds(1, [45, 46, 47]),
                               "raw-curated-images": _seeds(1, [44, 47, 50]),
                               "gold-short": _seeds(1, [60, 60, 60]), "shuffled-short": _seeds(1, [55, 40, 40])})  # fmt: skip
    assert recaption.verdict(s).startswith("insensitive (controls gold-short - shuffled-short = +5.0, +20.0")
    s["arms"]["shuffled-short"] = _seeds(1, [40, 40, 40])
    verdict = recaption.verdict(s)  # the size-matched pair (+1, -1, -3) is reported, not read by the verdict
    assert verdict.startswith("reproduced") and "short shuffled 40.0" in verdict
    assert "curated minus the same images' alt-text [" in verdict and "(mean -1.0)" in verdict
    del s["arms"]["curated-recaptions"]
    assert "no evaluated runs of curated-recaptions" in recaption.verdict(s)
    linear = [_point(x, 10 + x / 50) for x in (100, 200, 400, 800, 1600)]
    logarithmic = [_point(x, 10 * __import__("math").log(x) - 40) for x in (100, 200, 400, 800, 1600)]
    blocked = [_point(x, 20.0) for x in (100, 200, 400, 800, 1600)]
    s = _summary("curriculum", {"curriculum": linear, "mixed": logarithmic, "task-blocked": blocked})
    verdict = curriculum.verdict(s)  # mixed (~33.8 at the end) beats blocked (20) by >= 10 in its one seed
    assert verdict.startswith(("reproduced", "contradicted", "inconclusive")), verdict
    assert "R^2 linear/log: curriculum 1.00/" in verdict and "task-blocked 20.0" in verdict
    s["arms"]["task-blocked"] = [_point(x, 30.0) for x in (100, 200, 400, 800, 1600)]
    assert curriculum.verdict(s).startswith("insensitive (controls mixed - task-blocked = +3.8")
    steps = (75, 150, 300, 600, 1200)
    gold = [_point(x, 5 + 7 * __import__("math").log(x)) for x in steps]  # 54.6 at 1200
    flat = [_point(x, 40 + (-1) ** i) for i, x in enumerate(steps)]  # 41 at 1200
    arms = {
        "gold-short": gold,
        "shuffled-short": flat,
        "none": [_point(0, 50)],
        "vit-unfrozen": [_point(1200, 60)],
    }
    verdict = scaling.verdict(_summary("scaling", arms))
    assert verdict.startswith("reproduced (controls gold-short - shuffled-short = +13.6"), verdict
    assert (
        "7.00 ln(steps)" in verdict and "largest minus none +4.6" in verdict and "paired gain +5.4" in verdict
    )
    arms["shuffled-short"] = [_point(x, 46 + (-1) ** i) for i, x in enumerate(steps)]
    verdict = scaling.verdict(_summary("scaling", arms))
    assert verdict.startswith("insensitive (controls gold-short - shuffled-short = +7.6"), verdict
    arms["shuffled-short"] = [
        _point(x, 10 * __import__("math").log(x) - 30) for x in steps
    ]  # 40.9 at 1200, rising
    assert scaling.verdict(_summary("scaling", arms)).startswith("insensitive (shuffled-short rises as well")


def _seeds(x: float, values: list[float]) -> list[dict]:
    """One point whose metric has a value per seed."""
    import statistics

    return [
        {"x": x, "metrics": {"open answer": {"mean": statistics.fmean(values), "std": 1.0, "values": values}}}
    ]


def test_vit_transfer_verdict_reads_its_controls_per_seed():
    """vit-transfer's controls (pretrained vs random ViT) must separate by 10 points in every seed before its
    effect (SAILViT minus pretrained) is read; the compute-matched arm's difference is a clause."""
    arms = {"sailvit-vit": _seeds(1, [50, 52, 51]), "plain-vit": _seeds(1, [45, 47, 46]),
            "pretrained-vit": _seeds(1, [40, 42, 41]), "random-vit": _seeds(1, [20, 22, 35])}  # fmt: skip
    s = _summary("vit-transfer", arms)
    verdict = vit_transfer.verdict(s)
    assert verdict.startswith("insensitive") and "+20.0, +20.0, +6.0" in verdict  # seed 2's gap is 6
    arms["random-vit"] = _seeds(1, [20, 22, 25])
    verdict = vit_transfer.verdict(_summary("vit-transfer", arms))
    assert verdict.startswith("reproduced") and "paired effect +10.00 points" in verdict
    assert "SAILViT minus compute-matched +5.00 points" in verdict
    arms["sailvit-vit"] = _seeds(1, [30, 33, 30])
    assert vit_transfer.verdict(_summary("vit-transfer", arms)).startswith("contradicted")


def test_base_option_only_for_experiments_that_start_from_one(tmp_path):
    """`--base` must name a finished base, and only experiments that start from a base take it."""
    from types import SimpleNamespace

    from sailvl.errors import SailvlError
    from sailvl.experiment.run import base_kwargs

    random_start = SimpleNamespace(NAME="random-start")  # an experiment without USES_BASE
    with pytest.raises(SailvlError, match="random-start does not start from a pretrained base"):
        base_kwargs(random_start, tmp_path)
    assert base_kwargs(random_start, None) == {} and base_kwargs(vit_transfer, None) == {"base": None}
    with pytest.raises(SailvlError, match="holds no finished base"):
        base_kwargs(vit_transfer, tmp_path)
    (tmp_path / "base.json").write_text("{}")
    assert base_kwargs(vit_transfer, tmp_path) == {"base": tmp_path.resolve()}
    steps = vit_transfer.plan(SeedDirs(tmp_path / "seed-0"), 0, False, base=tmp_path)
    assert all(c.args[:2] != ["experiment", "base"] for c in steps)  # a shared base is not rebuilt
    assert any(str(tmp_path / "model") in c.args for c in steps)


def test_report_page_from_a_summary(tmp_path, capsys):
    from sailvl.cli import main

    s = _summary("vit-transfer", {"sailvit-vit": [_point(0, 40)], "pretrained-vit": [_point(0, 20)]})
    s["verdict"] = vit_transfer.verdict(s)
    s["commands"] = [{"seed": 0, "title": "train", "seconds": 3.0, "command": "sailvl train x"}]
    (tmp_path / "vt").mkdir()
    (tmp_path / "vt" / SUMMARY).write_text(json.dumps(s))
    main(["experiment", "report", str(tmp_path)])  # a directory of experiment directories
    md = (tmp_path / "vt" / "report" / "report.md").read_text()
    assert (
        "Verdict: insensitive" in md and "| sailvit-vit | 0 | 40.0 +- 1.0 |" in md and "sailvl train x" in md
    )
    assert (tmp_path / "vt" / "report" / "scores.png").stat().st_size > 5000
    assert "<table>" in (tmp_path / "vt" / "report" / "report.html").read_text()
    with pytest.raises(Exception, match="no results.json"):
        write_experiment_report(tmp_path / "empty")


@pytest.fixture(scope="module")
def quick_world(tmp_path_factory):
    """One quick-size world + tiny model shared by the four quick runs (each copies it as its synth step)."""
    from sailvl.cli import main

    root = tmp_path_factory.mktemp("quick-world")
    dirs = SeedDirs(root)
    main(recaption.plan(dirs, seed=0, quick=True)[0].args)
    return dirs


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_experiment_end_to_end(name, quick_world, tmp_path):
    """Every command of the quick plan runs (in-process; the CLI does the same in subprocesses); the results,
    verdict and report are written. Asserts the pipeline, not the outcome. All four: ~50 s on 2 shared cores."""
    import shutil

    from sailvl.cli import main
    from sailvl.experiment.run import run_experiment

    out = tmp_path / name
    seed_dir = SeedDirs(out / "seed-0")
    shutil.copytree(quick_world.world, seed_dir.world)
    shutil.copytree(quick_world.tiny, seed_dir.tiny)
    (seed_dir.root / "logs").mkdir(parents=True)
    (seed_dir.root / "logs" / "synth.done").write_text("0.0\n")  # resume: the world step is done
    report = run_experiment(get_experiment(name), out, seeds=1, quick=True, invoke=main)
    summary = json.loads((out / SUMMARY).read_text())
    module = get_experiment(name)
    # A 4-step captioner writes captions the checks and judge reject: the curated arm and its size-matched raw arm
    # (the alt-text of no image) are then skipped and named.
    optional = {"curated-recaptions", "raw-curated-images"} if name == "recaption" else set()
    assert set(module.ARMS) - optional <= set(summary["arms"]) <= set(module.ARMS)
    for arm in optional - set(summary["arms"]):
        assert arm in summary["verdict"].split("no evaluated runs of ")[1].split(" (")[0].split(", ")
    assert summary["verdict"].startswith(WORDS)
    if module.CONTROLS is None:  # no controls yet (test_experiment_stats: with them)
        assert summary["verdict"].startswith("insensitive") and summary["control_gap_per_seed"] == []
    else:  # one positive-minus-negative gap for the one seed, and the base every arm started from
        assert len(summary["control_gap_per_seed"]) == 1
        assert summary["base"]["shared"] is False and summary["base"]["per_seed"]["seed-0"]["seed"] == 0
    size = module.QUICK.size  # every arm scored the shared test set's first eval_limit items
    assert summary["eval_items"]["synth_vqa"] == size.eval_limit
    # Every evaluated point carries the open answers' likelihood forced choice beside the generated score.
    assert all("forced choice" in p["metrics"] for points in summary["arms"].values() for p in points)
    # A 4-step model answers with one or two strings: every quick run is flagged, and the page says so.
    assert summary["collapsed"] and all(c["tasks"] for c in summary["collapsed"])
    assert "Flagged: " in report.read_text()
    evals = [c["command"] for c in summary["commands"] if c["command"].startswith("sailvl eval")]
    assert evals and all(str(out / "shared-test" / "bench" / "synth_vqa.tsv") in c for c in evals)
    md = report.read_text()
    assert f"Verdict: {summary['verdict']}" in md and "(scores.png)" in md
    assert (report.parent / "scores.png").stat().st_size > 5000 and report.with_suffix(".html").is_file()
    extra = {"scaling": "(scaling_fit.png)", "curriculum": "| linear R^2 | log R^2 |"}.get(name)
    assert extra is None or extra in md
    # Arms ran with identical budgets: every training command of an arm differs only in its data / arm flags.
    trains = [c["command"] for c in summary["commands"] if c["command"].startswith("sailvl train")]
    assert trains and all("seed=0" in c for c in trains)


def test_runner_output_is_stdout_only(tmp_path):
    """A quoted answer (demo chat) is what the command printed; stderr (here Python's import trace) stays in the log."""
    from rich.console import Console

    from sailvl.demo.runner import StepRunner

    runner = StepRunner(tmp_path, Console(quiet=True))
    text = runner.output(Command("help", ["--help"], "help", env={"PYTHONVERBOSE": "1"}))
    assert "Usage" in text and "import " not in text
    assert "import " in (tmp_path / "logs" / "help.log").read_text()


def test_rerun_skips_finished_commands_and_counts_every_seed(tmp_path):
    """Resume: a finished command is not run again; a later `--first-seed` adds seeds to the same summary."""
    from types import SimpleNamespace

    from sailvl.experiment.run import run_experiment

    calls = []

    def invoke(args):  # stands in for `sailvl eval`: writes results.json under --out
        calls.append(args)
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(_results(10.0 * int(args[1]))))

    def plan(d, seed, quick):
        return [Command(f"eval {arm}", ["eval", str(seed), "--out", str(d.eval / arm / "final")], f"eval-{arm}")
                for arm in ("a", "b")]  # fmt: skip

    fake = SimpleNamespace(NAME="fake", CLAIM="c", ARMS=("a", "b"), plan=plan,
                           verdict=lambda s: f"not reproduced: {len(s['seeds'])} seeds")  # fmt: skip
    run_experiment(fake, tmp_path, seeds=2, invoke=invoke)
    assert len(calls) == 4
    run_experiment(fake, tmp_path, seeds=1, first_seed=2, invoke=invoke)
    assert len(calls) == 6  # seeds 0-1 were read back, not rerun
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["seeds"] == [0, 1, 2] and summary["verdict"] == "not reproduced: 3 seeds"
    assert summary["arms"]["a"][0]["metrics"]["open answer"]["values"] == [0.0, 10.0, 20.0]
    assert len(summary["commands"]) == 6 and (tmp_path / "report" / "report.md").is_file()
    # Another process is running seed 3 into the same OUT (its first command done, the second not): this run's
    # summary leaves it out and does not run its commands.
    (tmp_path / "seed-3" / "logs").mkdir(parents=True)
    (tmp_path / "seed-3" / "logs" / "eval-a.done").write_text("1.0\n")
    run_experiment(fake, tmp_path, seeds=1, first_seed=4, invoke=invoke)
    assert len(calls) == 8 and not any(c[1] == "3" for c in calls)
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["seeds"] == [0, 1, 2, 4] and summary["verdict"] == "not reproduced: 4 seeds"


def test_jobs_run_seeds_side_by_side_with_split_threads(tmp_path, monkeypatch):
    """`--jobs 2`: two seeds' commands run at the same time (a barrier both must reach), each subprocess with
    half the CPU threads, and the summary counts both seeds."""
    import subprocess
    import threading
    from types import SimpleNamespace

    import sailvl.demo.runner as runner_module
    from sailvl.experiment.run import run_experiment

    monkeypatch.setattr(runner_module.os, "cpu_count", lambda: 4)
    barrier, envs = threading.Barrier(2, timeout=20), []

    def fake_run(argv, stdout, stderr, env, stdin):  # stands in for `python -m sailvl.cli eval ... --out DIR`
        args = argv[3:]
        barrier.wait()  # BrokenBarrierError (a failed test) unless the other seed's command runs meanwhile
        envs.append(env["OMP_NUM_THREADS"])
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(_results(10.0 * int(args[1]))))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(runner_module.subprocess, "run", fake_run)

    def plan(d, seed, quick):
        return [Command(f"eval {arm}", ["eval", str(seed), "--out", str(d.eval / arm / "final")], f"eval-{arm}")
                for arm in ("a", "b")]  # fmt: skip

    fake = SimpleNamespace(
        NAME="fake", CLAIM="c", ARMS=("a", "b"), plan=plan, verdict=lambda s: "not reproduced"
    )
    run_experiment(fake, tmp_path, seeds=2, jobs=2)
    assert envs == ["2"] * 4
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["seeds"] == [0, 1] and summary["arms"]["a"][0]["metrics"]["open answer"]["values"] == [
        0.0,
        10.0,
    ]


def test_cli_runs_steps_in_its_own_process_unless_told_or_running_seeds_side_by_side(tmp_path, monkeypatch):
    """`sailvl experiment NAME` hands run_experiment the CLI entry (steps in this process) with --jobs 1, and
    None (a subprocess per step) with --subprocesses or --jobs N."""
    import sailvl.experiment.run as run_module
    from sailvl.cli import main

    seen = []

    def fake_run_experiment(experiment, out, seeds, quick, first_seed, jobs, base, invoke):
        seen.append((experiment.NAME, jobs, invoke))
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "run_experiment", fake_run_experiment)
    for flags in ([], ["--subprocesses"], ["--jobs", "2"]):
        with pytest.raises(SystemExit):
            main(["experiment", "scaling", "--quick", "--out", str(tmp_path), *flags])
    assert seen == [("scaling", 1, main), ("scaling", 1, None), ("scaling", 2, None)]


def test_experiment_package_imports_run_one_way():
    """Every import between this package's modules, function-local ones included, forms no circle; `base` (what
    the experiment modules import) imports only the leaf `stats`. A local import that dodges a circle fails this."""
    import ast
    import graphlib

    import sailvl.experiment as package

    root = Path(package.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sailvl.experiment":
                deps |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sailvl.experiment."):
                deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps
    assert graph["base"] == {"stats"} and graph["stats"] == set()
    assert graph["registry"] >= {"curriculum", "recaption", "scaling", "vit_transfer"}
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a circle
