"""A smoke run of loadtests/nsfw_cost.py: two repeats at 64 px, the report it prints."""

from __future__ import annotations

import json

import pytest

from loadtests.nsfw_cost import main, measure


def test_a_short_run_reports_each_phase() -> None:
    report = measure([64], [1], repeats=2)
    (row,) = report["rows"]
    assert (row["threads"], row["side"]) == (1, 64)
    assert 0.0 <= row["nsfw_score"] < 0.8
    for phase in ("decode", "score", "decode_and_score"):
        timing = row[phase]
        assert 0 < timing["median_ms"] <= timing["p95_ms"] <= timing["max_ms"]
    assert report["peak_rss_mib"] > 0


def test_the_command_prints_json_and_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--repeats", "1", "--sides", "32", "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["repeats"] == 1
    with pytest.raises(SystemExit) as refused:
        main(["--repeats", "0"])
    assert refused.value.code == 2
    assert "--repeats and --threads must be at least 1" in capsys.readouterr().err
