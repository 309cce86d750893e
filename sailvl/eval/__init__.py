"""Evaluation: VLMEvalKit benchmark TSVs, prompts, scorers, resumable runner, scaling-law fits.

`run_eval` drives any predictor over benchmarks (`evaluate_model` wires a model directory to it);
`fit_results` turns the results JSONs of a checkpoint series into a score-vs-log(budget) fit."""

from sailvl.eval.aggregate import score_benchmark
from sailvl.eval.matching import MATCHING_POLICIES, VLMEVALKIT_VERSION, TextJudge
from sailvl.eval.registry import (
    BENCHMARKS,
    OPENCOMPASS_AVERAGE,
    BenchmarkSpec,
    get_benchmark,
    resolve_benchmark,
)
from sailvl.eval.runner import results_table, run_eval
from sailvl.eval.scaling import fit_log_linear, fit_results
from sailvl.eval.tsv import BenchItem, read_benchmark, write_benchmark

__all__ = [
    "BENCHMARKS",
    "MATCHING_POLICIES",
    "OPENCOMPASS_AVERAGE",
    "VLMEVALKIT_VERSION",
    "BenchItem",
    "BenchmarkSpec",
    "TextJudge",
    "fit_log_linear",
    "fit_results",
    "get_benchmark",
    "read_benchmark",
    "resolve_benchmark",
    "results_table",
    "run_eval",
    "score_benchmark",
    "write_benchmark",
]
