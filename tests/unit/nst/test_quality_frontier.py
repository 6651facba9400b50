"""loadtests/quality_frontier.py: what it refuses before stylizing anything, and a short run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.quality_frontier import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "nope"], "unknown model 'nope'"),
        (["--gatys", "nope"], "unknown model 'nope'"),
        (["--gatys-variant", "[1, 2]"], "a gatys variant is a JSON object"),
        (["--gatys-variant", '{"stepz": 1}'], "unknown GatysConfig keys ['stepz']"),
        (["--gatys-variant", '{"steps": 0}'], "steps must be at least 1"),
        (["--gatys-variant", '{"content_weight": "x"}'], "a gatys setting has the wrong type"),
        (["--content-weights", "-1"], "weights and init_noise must not be negative"),
        (["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert message in capsys.readouterr().err


def test_a_run_without_gatys_or_models_reports_the_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No manifest in --data: scikit-image's grid.
    assert main(["--data", str(tmp_path), "--content-weights", "", "--models", ""]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.index("\n\n|")])
    (row,) = report["rows"]
    assert row["model"] == "baseline.histogram"
    assert (row["style_ratio"], row["content_ratio"]) == (1.0, 1.0)
    assert "| baseline.histogram | 1.000 | 1.000 | no |" in out
