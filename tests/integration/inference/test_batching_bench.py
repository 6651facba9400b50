"""CI smoke of loadtests/batching_bench.py: tiny counts, and it writes its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bench import run_bench

pytestmark = pytest.mark.slow


def test_the_batching_bench_runs_every_case_and_appends_its_report(
    tmp_path: Path,
) -> None:
    report = run_bench(
        tmp_path,
        "batching_bench",
        *("--side", "64", "--clients", "1", "3", "--seconds", "5", "--calls", "2"),
        *("--warmup", "1", "--threads", "1", "--log", str(tmp_path / "server.log")),
        log=tmp_path / "server.log",
    )
    assert "### Micro-batching, adain.lite0-v1, 64 px" in report
    rows = [line for line in report.splitlines() if line.startswith(("| off |", "| on"))]
    assert [row.split("|")[1:3] for row in rows] == [
        [f" {setting} ", f" {clients} "]
        for clients in (1, 3)
        for setting in ("off", "on", "on-10ms")
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        images_per_s, mean_batch, errors = float(cells[2]), float(cells[5]), int(cells[7])
        assert images_per_s > 0, row
        assert errors == 0, row
        # Batching off runs one image per pass; each client sent 2 measured calls.
        assert mean_batch == 1.0 if cells[0] == "off" else 1.0 <= mean_batch <= 8.0, row
