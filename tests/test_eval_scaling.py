"""Scaling-law fit: known a, b recovered from synthetic points; intervals; PNG written; CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _plot_checks import TAB_BLUE, TAB_ORANGE, TAB_RED, colour_blobs, colour_pixels

from sailvl.errors import SailvlError
from sailvl.eval.scaling import fit_log_linear, fit_results, load_points


def test_exact_points_recover_a_b():
    xs = [1e6, 1e7, 1e8, 1e9]
    fit = fit_log_linear(xs, [10.0 + 2.5 * math.log(x) for x in xs], targets=[1e12])
    assert fit.a == pytest.approx(10.0)
    assert fit.b == pytest.approx(2.5)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.predictions[0]["score"] == pytest.approx(10.0 + 2.5 * math.log(1e12))


def test_noisy_points_interval_covers_truth():
    rng = np.random.default_rng(0)
    xs = np.exp(np.linspace(math.log(1e6), math.log(1e10), 12))
    ys = -20.0 + 3.0 * np.log(xs) + rng.normal(0, 0.5, xs.size)
    fit = fit_log_linear(xs.tolist(), ys.tolist(), targets=[1e12])
    assert fit.a_interval[0] < -20.0 < fit.a_interval[1]
    assert fit.b_interval[0] < 3.0 < fit.b_interval[1]
    assert abs(fit.b - 3.0) < 0.2
    assert 0.95 < fit.r2 < 1.0
    pred = fit.predictions[0]
    assert pred["low"] < pred["score"] < pred["high"]
    # Extrapolating further out widens the prediction interval.
    far = fit_log_linear(xs.tolist(), ys.tolist(), targets=[1e11, 1e14]).predictions
    assert far[1]["high"] - far[1]["low"] > far[0]["high"] - far[0]["low"]


def test_bad_inputs_raise_user_errors():
    with pytest.raises(SailvlError):
        fit_log_linear([1e6], [1.0])
    with pytest.raises(SailvlError):
        fit_log_linear([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(SailvlError):
        fit_log_linear([5.0, 5.0], [1.0, 2.0])


def _write_results(tmp_path, a, b, budgets):
    paths = []
    for i, tokens in enumerate(budgets):
        score = a + b * math.log(tokens)
        run = tmp_path / f"ckpt{i}"
        run.mkdir()
        data = {"tokens_seen": tokens, "samples_seen": tokens / 100, "average": score, "benchmarks": {}}
        (run / "results.json").write_text(json.dumps(data))
        paths.append(run / "results.json")
    return paths


def test_fit_results_reads_eval_json_and_writes_png(tmp_path):
    paths = _write_results(tmp_path, 5.0, 1.5, [1e5, 1e6, 1e7, 1e8])
    out_png = tmp_path / "plot" / "fit.png"
    report = fit_results(paths, "tokens", targets=[1e12], out_png=out_png)
    assert report["fit"]["a"] == pytest.approx(5.0)
    assert report["fit"]["b"] == pytest.approx(1.5)
    assert out_png.is_file()
    from PIL import Image

    with Image.open(out_png) as image:
        assert image.format == "PNG"
        assert image.size == (640, 420)
    # The data, not just axes: one blue dot per checkpoint (and the legend's), the orange fit line across the
    # plot (~800 px measured), one red star at the target.
    assert colour_blobs(out_png, TAB_BLUE) == 4 + 1
    assert colour_pixels(out_png, TAB_ORANGE) > 500
    assert colour_blobs(out_png, TAB_RED) == 1
    # samples_seen = tokens/100 shifts a by -b*ln(100) and keeps b.
    by_samples = fit_results(paths, "samples")
    assert by_samples["fit"]["b"] == pytest.approx(1.5)
    assert by_samples["fit"]["a"] == pytest.approx(5.0 + 1.5 * math.log(100))


def test_load_points_errors(tmp_path):
    with pytest.raises(SailvlError, match="does not exist"):
        load_points([tmp_path / "nope.json"], "tokens")
    (tmp_path / "r.json").write_text(json.dumps({"average": 1.0}))
    with pytest.raises(SailvlError, match="tokens_seen"):
        load_points([tmp_path / "r.json"], "tokens")
    with pytest.raises(SailvlError, match="--x"):
        load_points([tmp_path / "r.json"], "steps")
