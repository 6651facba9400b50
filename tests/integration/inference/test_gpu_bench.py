"""CI smoke of loadtests/gpu_bench.py on the CPU provider: tiny counts, and its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bench import run_bench

pytestmark = pytest.mark.slow


def test_the_gpu_bench_measures_both_precisions_and_appends_its_report(
    tmp_path: Path,
) -> None:
    report = run_bench(
        tmp_path,
        "gpu_bench",
        *("--device", "cpu", "--models", "adain.lite0-v1,gatys.lite0-fast", "--side", "64"),
        *("--batches", "1", "3", "--runs", "2", "--threads", "1"),
    )
    assert "### GPU engine, 64 px" in report
    rows = [line for line in report.splitlines() if line.startswith("| adain.lite0-v1 |")]
    assert [row.split("|")[2].strip() for row in rows] == [
        "fp32 (cpu)",
        "fp16 (cpu)",
        "fp32 (cpu)",
        "fp16 (cpu)",
    ]
    # fp16 was measured against fp32 before it ran: mean / p99.9 / max levels.
    mean, p999, worst = (float(v) for v in rows[1].split("|")[3].split("/"))
    assert mean <= 0.5
    assert p999 <= 4.0
    assert worst <= 255
    for row in rows[2:]:
        assert all(float(rate) > 0 for rate in row.split("|")[3:5]), row
    # gatys has no graph: measured once, in torch, and it does not batch.
    (gatys,) = [line for line in report.splitlines() if line.startswith("| gatys.lite0-fast |")]
    assert gatys.split("|")[2].strip() == "fp32, torch (cpu)"
    assert float(gatys.split("|")[6]) > 0
