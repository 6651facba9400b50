"""CI smoke of loadtests/batching_bench.py: tiny counts, and it writes its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def test_the_batching_bench_runs_every_case_and_appends_its_report(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# earlier sections stay\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.batching_bench",
            *("--side", "64", "--clients", "1", "3", "--seconds", "5", "--calls", "2"),
            *("--warmup", "1", "--threads", "1", "--log", str(tmp_path / "server.log")),
            *("--append", str(results)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "server.log").read_text()
    report = results.read_text()
    assert report.startswith("# earlier sections stay\n")
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
