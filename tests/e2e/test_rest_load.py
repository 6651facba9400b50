"""The Locust load test stays runnable: a tiny run of `python -m loadtests.rest_load` on its
own mesh stylizes jobs through REST and reports throughput, latency and CPU per component.

(locust itself is never imported here: it monkey-patches the process with gevent.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.rest_load import Level, _collapsed_top, _quantiles

REPO = Path(__file__).resolve().parents[2]


def test_quantiles_and_profiles_are_summarised() -> None:
    assert _quantiles([1.0, 2.0, 3.0, 4.0, 100.0]) == {"p50": 3.0, "p95": 100.0, "p99": 100.0}
    assert _quantiles([]) == {}
    level = Level(users=4, jobs=10, window_s=5.0)
    assert level.jobs_per_s == 2.0
    raw = "main (services/jobs/__main__.py:1);run (gouache/db/x.py:2);select (selectors.py:3) 7\n"
    raw += "main (services/jobs/__main__.py:1);handle (services/jobs/app.py:9) 3\n"
    top = _collapsed_top(raw)
    assert top["samples"] == 10
    assert top["own"][0] == ("select (selectors.py:3)", 7)
    assert ("main (services/jobs/__main__.py:1)", 10) in top["inclusive_project"]


@pytest.mark.slow
def test_a_tiny_run_stylizes_through_rest_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    command = [
        sys.executable,
        "-m",
        "loadtests.rest_load",
        "--users",
        "2",
        "--duration",
        "12",
        "--warmup",
        "4",
        "--engine-runs",
        "2",
        "--side",
        "128",
        "--json",
        str(report),
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=420, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| clients | jobs/s |" in done.stdout
    figures = json.loads(report.read_text())
    (level,) = figures["levels"]
    assert level["users"] == 2
    assert level["jobs"] > 0
    assert level["failed"] == 0
    # Every job uploads new bytes (a JPEG comment per job), so none is a cache hit.
    assert level["cached"] == 0
    assert level["latency_ms"]["p50"] > 0
    assert level["cpu_s"]["inference"] > 0
    assert figures["engine"]["images_per_s"] > 0
