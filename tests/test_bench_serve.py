"""`sailvl bench serve` end to end on the tiny preset: both servers answer, and the serial baseline really makes one
`generate` call per request while the batched server makes fewer."""

import pytest


@pytest.mark.slow
def test_bench_serve_times_batched_against_one_request_per_call():
    from sailvl.bench.serve import bench_serve

    result = bench_serve(clients=[4], requests=8, max_tokens=2, max_batch=4, repeats=1, budget_s=300)
    row = result["clients"]["4"]
    assert result["skipped"] == [] and row["requests"] == 8 and row["repeats"] == 1
    assert row["baseline_generate_calls"] == 8 and row["generate_calls"] < 8
    assert row["requests_per_s"] > 0 and row["speedup"] == pytest.approx(
        row["requests_per_s"] / row["baseline_requests_per_s"], rel=0.05
    )
