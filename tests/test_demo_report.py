"""The demo report takes the scaling fit from the fit command's own stdout, not from a log file found by name."""

import json

from sailvl.demo.report import parse_scaling_fit


def test_scaling_fit_is_the_last_stdout_line():
    fit = {"a": 1.5, "b": 2.25, "r2": 0.9, "n": 3}
    assert parse_scaling_fit("points: 3\nscore = a + b ln(tokens)\n" + json.dumps(fit) + "\n") == fit


def test_missing_or_broken_fit_line_is_none_and_warned(caplog):
    assert parse_scaling_fit("") is None
    assert parse_scaling_fit("fit failed\n{not json") is None
    assert parse_scaling_fit("[1, 2]") is None
    assert caplog.text.count("no JSON fit line") == 3
