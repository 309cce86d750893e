"""`sailvl bench data`: the JSON report of the built-in synthetic mix and of a config file."""

import json

import pytest
import yaml

from sailvl.cli import main


def _run(capsys, *args):
    main(["bench", "data", "--json", "--mix", "tiny", "--batches", "3", "--tiler-seconds", "0.2", *args])
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_bench_data_default_mix_reports_both_runs(capsys):
    report = _run(capsys)
    packed, baseline = report["packed"], report["pad_to_longest"]
    assert packed["samples"] > 0 and baseline["samples"] > 0
    assert packed["padding_efficiency"] > baseline["padding_efficiency"]
    assert packed["padding_efficiency"] >= 0.9
    assert report["tiler"]["same_tile_count"] and report["tiler"]["pil_baseline_images_per_s"] > 0
    cache = report["text_cache"]  # the second pass over the same stream finds every conversation encoded
    assert cache["hit_rate"] == 1.0 and cache["cached_conversations"] > 0 and cache["cached_tokens"] > 0
    assert cache["uncached_samples_per_s"] > 0 and cache["warm_cache_samples_per_s"] > 0


def test_bench_data_rejects_a_bad_config(tmp_path, capsys):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"data": {"sources": [{"path": "x.jsonl", "wieght": 2}]}}))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "data", "--config", str(path), "--json"])
    assert exc.value.code == 2
    assert "unknown config key 'sources.0.wieght'" in capsys.readouterr().err
