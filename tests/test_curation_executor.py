"""Local executor: lineage is complete after a run killed mid-way and resumed; dedup works across shards;
a process pool gives the same kept set as one process; output formats; config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _curation_helpers import CHEAP_STEPS, make_pipeline, write_corpus

from sailvl.curation.base import register_step
from sailvl.curation.config import load_pipeline
from sailvl.curation.executors import LocalExecutor, run_pipeline
from sailvl.curation.judge import Judge
from sailvl.curation.lineage import check_lineage, iter_lineage, read_kept
from sailvl.errors import ConfigError, SailvlError

TESTS_DIR = Path(__file__).parent


def _kept_ids(run_dir: Path) -> list[str]:
    return [s.id for s in read_kept(run_dir)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    path, ids = write_corpus(root, 30, dup_every=5, bad_every=11)
    return path, ids


@pytest.fixture(scope="module")
def reference_run(corpus, tmp_path_factory):
    path, ids = corpus
    out = tmp_path_factory.mktemp("ref") / "run"
    manifest = LocalExecutor(make_pipeline(path, out, CHEAP_STEPS)).run()
    return out, manifest


def test_reference_run_counts(reference_run, corpus):
    out, manifest = reference_run
    _, ids = corpus
    report = check_lineage(out, ids)
    assert report.ok
    # r0005, r0010, ... repeat the previous image (dedup); r0000, r0011, r0022 have no caption.
    assert report.by_reason[("dedup", "exact_duplicate")] == 5
    assert report.by_reason[("text_checks", "text_empty")] == 3
    assert manifest["kept"] == 30 - 8 == report.kept
    assert len(manifest["shards"]) == 6 and manifest["steps"]["image_checks"]["in"] == 30


def test_dedup_crosses_shard_boundaries(reference_run):
    out, _ = reference_run
    fates = {row["id"]: row for row in iter_lineage(out)}
    # Shards hold 5 records, so r0005 (shard 1) repeats r0004 (shard 0), and so on: every pair spans shards.
    duplicates = json.loads((out / "dedup" / "dedup" / "duplicates.json").read_text())
    assert duplicates == {f"r{i:04d}": f"r{i - 1:04d}" for i in (5, 10, 15, 20, 25)}
    assert fates["r0004"]["status"] == "kept" and fates["r0004"]["output"] == "kept/shard-00000.jsonl"
    assert fates["r0005"] == {
        "id": "r0005",
        "status": "rejected",
        "step": "dedup",
        "reason": "exact_duplicate",
    }


def test_dedup_across_files(tmp_path):
    a, _ = write_corpus(tmp_path / "a", 6)
    b, _ = write_corpus(tmp_path / "b", 6)  # same images as a (same seeds), other ids would collide: rename
    lines = [json.loads(x) for x in b.read_text().splitlines()]
    b.write_text("\n".join(json.dumps({**r, "id": "b" + r["id"]}) for r in lines) + "\n")
    cfg = make_pipeline(a, tmp_path / "run", [{"type": "dedup", "method": "phash", "threshold": 2}])
    cfg = cfg.model_copy(update={"input": cfg.input.model_copy(update={"paths": [str(a), str(b)]})})
    LocalExecutor(cfg).run()
    assert _kept_ids(tmp_path / "run") == [f"r{i:04d}" for i in range(6)]


def test_injected_failure_then_resume(corpus, reference_run, tmp_path):
    path, ids = corpus
    out = tmp_path / "run"
    crashing = CHEAP_STEPS + [{"type": "test_crash", "crash_at": "r0017", "mode": "raise"}]
    with pytest.raises(SailvlError, match="1 of 6 shards failed"):
        LocalExecutor(make_pipeline(path, out, crashing)).run()
    assert len(list((out / "done").glob("*.json"))) == 5  # the other shards finished
    assert (out / "tmp" / "shard-00003").exists()  # half-written shard left behind
    # Resuming with another pipeline in the same run dir is refused ...
    with pytest.raises(SailvlError, match="different pipeline"):
        LocalExecutor(make_pipeline(path, out, CHEAP_STEPS)).run()
    # ... the same one resumes once the cause of the failure is gone (the "bug" is fixed between runs).
    from _curation_helpers import Crash

    with pytest.MonkeyPatch.context() as patch:  # restores Crash.keep for later tests in this process
        patch.setattr(Crash, "keep", lambda self, record: True)
        LocalExecutor(make_pipeline(path, out, crashing)).run()
    report = check_lineage(out, ids)
    assert report.ok and report.kept + report.rejected == len(ids)
    assert _kept_ids(out) == _kept_ids(reference_run[0])


def test_sigkill_mid_shard_then_resume(corpus, reference_run, tmp_path):
    path, ids = corpus
    out = tmp_path / "run"
    steps = CHEAP_STEPS + [{"type": "test_crash", "crash_at": "r0012", "mode": "kill"}]
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(TESTS_DIR)!r})
        from _curation_helpers import make_pipeline
        from sailvl.curation.executors import LocalExecutor, run_pipeline
        from pathlib import Path
        LocalExecutor(make_pipeline(Path({str(path)!r}), Path({str(out)!r}), {steps!r})).run()
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    done = sorted(p.name for p in (out / "done").glob("*.json"))
    assert done == ["shard-00000.json", "shard-00001.json"]  # killed inside shard 2
    assert not (out / "kept" / "shard-00002.jsonl").exists()
    # Resume in this process, where the crash step no longer kills.
    from _curation_helpers import Crash

    with pytest.MonkeyPatch.context() as patch:  # restores Crash.keep for later tests in this process
        patch.setattr(Crash, "keep", lambda self, record: True)
        LocalExecutor(make_pipeline(path, out, steps)).run()
    report = check_lineage(out, ids)
    assert report.ok and report.kept + report.rejected == len(ids) and not report.repeated_ids
    assert _kept_ids(out) == _kept_ids(reference_run[0])


@pytest.mark.slow
def test_process_pool_matches_single_process(corpus, reference_run, tmp_path):
    path, ids = corpus
    out = tmp_path / "run"
    LocalExecutor(make_pipeline(path, out, CHEAP_STEPS, executor={"workers": 2})).run()
    assert check_lineage(out, ids).ok
    assert _kept_ids(out) == _kept_ids(reference_run[0])


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_other_output_formats_read_back(corpus, reference_run, tmp_path, fmt):
    from sailvl.data.readers import read_source

    path, _ = corpus
    out = tmp_path / "run"
    manifest = LocalExecutor(make_pipeline(path, out, CHEAP_STEPS[:2], output={"format": fmt})).run()
    got = []
    for shard in manifest["shards"]:
        got += [s.id for s in read_source(fmt, out / shard["path"])]
    kept_rows = [row for row in iter_lineage(out) if row["status"] == "kept"]
    assert got == [row["id"] for row in kept_rows] and len(got) == manifest["kept"] == 27


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "input: {paths: [x.jsonl]}\noutput_dir: out\nsteps:\n  - {type: image_checks, min_sid: 3}\n"
    )
    with pytest.raises(ConfigError, match="min_sid"):
        load_pipeline(bad)
    bad.write_text("input: {paths: [x.jsonl]}\noutput_dir: out\nsteps:\n  - {type: recolour}\n")
    with pytest.raises(ConfigError, match="unknown curation step type 'recolour'.*image_checks"):
        load_pipeline(bad)
    bad.write_text("input: {paths: [x.jsonl]}\noutput_dir: out\nsteps:\n  - {type: image_checks}\n")
    cfg = load_pipeline(bad, ["steps.0.min_side=40"])
    assert cfg.build_steps()[0].params.min_side == 40


def test_a_worker_sets_each_step_up_once_across_shards(corpus, tmp_path):
    """A model step loads its model in `setup`: one worker keeps it for every shard it processes."""
    from _curation_helpers import Shout

    setups = []
    Shout.setup = lambda self: setups.append(self.name)
    try:
        path, _ = corpus
        LocalExecutor(make_pipeline(path, tmp_path / "run", [{"type": "test_shout"}])).run()
    finally:
        del Shout.setup
    assert setups == ["test_shout"] and len(list((tmp_path / "run" / "done").glob("*.json"))) == 6


# A config mistake found on the workers: a score with no prompt, for records that lack it (every shard).
NO_PROMPT_STEPS = [
    {"type": "image_checks", "min_side": 16},
    {"type": "sft_scoring", "keys": ["novelty"], "prompts": {}},
]
NO_PROMPT_MESSAGE = "sft_scoring has no prompt for score 'novelty' and some records lack that field"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_user_error_stops_the_run_in_process_and_in_a_pool_alike(corpus, tmp_path, workers):
    """A SailvlError is the user's to fix, and every shard would hit it: both modes stop and raise it as it is
    (the CLI prints its one line), rather than one mode reporting it as "N of M shards failed"."""
    path, _ = corpus
    cfg = make_pipeline(path, tmp_path / "run", NO_PROMPT_STEPS, executor={"workers": workers})
    with pytest.raises(SailvlError) as raised:
        LocalExecutor(cfg).run()
    assert type(raised.value) is SailvlError and str(raised.value) == NO_PROMPT_MESSAGE
    assert not list((tmp_path / "run" / "done").glob("*.json"))


@pytest.mark.slow
def test_a_user_error_stops_a_ray_run_alike(corpus, tmp_path):
    ray = pytest.importorskip("ray")
    path, _ = corpus
    cfg = make_pipeline(path, tmp_path / "run", NO_PROMPT_STEPS, executor={"type": "ray"})
    # Actors import this checkout's sailvl (and the tests' step plug-ins), as the driver does.
    pythonpath = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(TESTS_DIR)) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})  # fmt: skip
    try:
        with pytest.raises(SailvlError) as raised:
            run_pipeline(cfg)
    finally:
        ray.shutdown()
    assert type(raised.value) is SailvlError and str(raised.value) == NO_PROMPT_MESSAGE


@register_step("test_scripted_judge")
class ScriptedJudge(Judge):
    """The judge step with a strong judge's answers scripted by record number (no model)."""

    ITA = [
        "Yes, the caption is accurate.",
        "The caption is not correct.",
        "I cannot view images.",
        "Aligned: no",
    ]

    def setup(self) -> None:
        def answer(prompt):
            number = int(
                (prompt if isinstance(prompt, str) else prompt[0]["content"]).split("number ")[1][:2]
            )
            return "Rating (1-5): 4" if isinstance(prompt, list) else self.ITA[number % 4]

        self.generate_fn = lambda requests: [answer(prompt) for _, prompt in requests]


def test_manifest_counts_unparsed_judgements(corpus, tmp_path):
    path, ids = corpus
    out = tmp_path / "run"
    manifest = LocalExecutor(
        make_pipeline(path, out, CHEAP_STEPS[1:2] + [{"type": "test_scripted_judge"}])
    ).run()
    stats = manifest["steps"]["test_scripted_judge"]
    # 27 captions reach the judge (3 are empty); numbers 2, 6, 10, ... get a refusal, 1, 3, 5, ... a "no".
    refused = [i for i in range(30) if i % 11 and i % 4 == 2]
    assert stats["unparsed_ita"] == stats["rejected:judge_unparseable"] == len(refused) == 6
    assert stats["rejected:judge_misaligned"] == len([i for i in range(30) if i % 11 and i % 2]) == 14
    assert stats["out"] == 27 - 6 - 14 and "unparsed_vir" not in stats
    rows = [json.loads(line) for p in sorted((out / "rejected").glob("*.jsonl")) for line in p.open()]
    unparsed = [r for r in rows if r["reason"] == "judge_unparseable"]
    assert [r["id"] for r in unparsed] == [f"r{i:04d}" for i in refused]
    assert {r["sample"]["metadata"]["judge_ita_answer"] for r in unparsed} == {"I cannot view images."}
    assert check_lineage(out, ids).ok
