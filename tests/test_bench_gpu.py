"""`sailvl bench gpu`: every command of the GPU plan is a valid `sailvl` invocation (checked on CPU, before a lent
GPU's minutes are spent on it), and the smoke plan runs the same machinery end to end on the tiny presets."""

import json

import pytest
import typer

from sailvl.bench.gpu import PLANS, run_plan
from sailvl.cli import app, register_commands


def _parse(args: list[str]) -> dict:
    """The parameters `sailvl ARGS` would run its command with (parsed by click, nothing run)."""
    register_commands()
    command = typer.main.get_command(app)
    ctx = command.make_context("sailvl", list(args))
    while hasattr(command, "resolve_command"):  # a group: descend into the named sub-command
        name, command, rest = command.resolve_command(ctx, ctx._protected_args + ctx.args)
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx.params


@pytest.mark.parametrize("bench", PLANS["gpu"], ids=lambda b: b.name)
def test_gpu_plan_commands_parse(bench):
    params = _parse(bench.args("/tmp/x"))
    assert params.get("as_json") is True  # every result comes back as JSON for the summary
    if bench.name.startswith("train-"):
        from sailvl.bench.switches import flip_switch, parallel_switches
        from sailvl.bench.train import PRESETS
        from sailvl.cli.train import _switches
        from sailvl.train.parallel import StepSwitches

        assert params["preset"] in PRESETS and params["attn"] == ["flex_attention"]
        parallel_switches(_switches(params["switch"] or []))  # names and values as the run checks them
        for name in params["ab"] or []:
            flip_switch(StepSwitches(True, True, False, True), name)  # the CUDA defaults
    if bench.name.startswith("explain-"):
        from sailvl.bench.switches import parallel_switches
        from sailvl.cli.train import _switches

        assert params["explain"] is True
        parallel_switches(_switches(params["switch"] or []))
    assert bench.timeout_s <= 600


def test_a_typo_in_a_plan_command_would_be_caught():
    with pytest.raises(Exception, match="No such option: --atn"):
        _parse(["bench", "train", "--preset", "sailvl-2b", "--atn", "flex_attention"])


def test_budget_and_missing_modules_skip_with_a_reason(tmp_path):
    summary = run_plan("smoke", tmp_path, budget_s=5, only=["train-tiny", "needs-a-missing-module"])
    rows = {row["name"]: row for row in summary["benchmarks"]}
    assert rows["train-tiny"]["status"] == "skipped" and "budget" in rows["train-tiny"]["reason"]
    assert rows["needs-a-missing-module"]["reason"] == "no_such_module_xyz not installed"
    assert "| train-tiny | skipped |" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_smoke_plan_runs_each_benchmark_in_its_own_process(tmp_path):
    summary = run_plan("smoke", tmp_path, budget_s=900)
    rows = {row["name"]: row for row in summary["benchmarks"]}
    train, curate = rows["train-tiny"], rows["curate-tiny"]
    assert train["status"] == "ok" and train["figures"]["ratio"] > 0, train
    assert train["figures"]["switches"]["fused_optimizer"] is False  # the CPU defaults, resolved
    assert curate["status"] == "ok" and set(curate["figures"]["steps"]) >= {"recaption", "judge_answer"}, (
        curate
    )
    explain = rows["explain-tiny"]
    assert explain["status"] == "ok" and explain["figures"]["vit_block"]["graph_breaks"] == 0, explain
    assert rows["needs-a-missing-module"]["status"] == "skipped"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["benchmarks"][0]["result"]["sailvl_steps"] == 2
    assert "aten::" in (tmp_path / "top_kernels.txt").read_text()  # the profile's table came back
    assert "== train-tiny: exit 0" in (tmp_path / "logs.txt").read_text()
    # A handful of files: what a lent machine returns (at most 8 files) holds all of it.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "logs.txt",
        "summary.json",
        "summary.md",
        "top_kernels.txt",
    ]
