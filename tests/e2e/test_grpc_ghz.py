"""The ghz load test stays runnable: a tiny run of `python -m loadtests.grpc_ghz` on its own
mesh produces its table and JSON report, with every call answered OK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.grpc_ghz import GHZ, PROTOSET, Report, Round, parse_ghz, summarise_stacks
from tests.fixtures.required import missing_server

REPO = Path(__file__).resolve().parents[2]


def test_a_ghz_report_becomes_a_round() -> None:
    ghz_json = {
        "count": 20,
        "rps": 412.5,
        "slowest": 9_000_000,
        "statusCodeDistribution": {"OK": 18, "Unavailable": 2},
        "latencyDistribution": [
            {"percentage": 50, "latency": 2_000_000},
            {"percentage": 95, "latency": 5_500_000},
            {"percentage": 99, "latency": 8_000_000},
        ],
    }
    parsed = parse_ghz("edge", "127.0.0.1:1", ghz_json, wall_s=0.1)
    assert (parsed.calls, parsed.ok, parsed.errors) == (20, 18, {"Unavailable": 2})
    assert parsed.latency_ms == {"p50": 2.0, "p95": 5.5, "p99": 8.0}
    assert parsed.slowest_ms == 9.0


def test_the_summary_is_the_median_of_each_targets_rounds() -> None:
    def one(target: str, rps: float, p99: float, errors: int) -> Round:
        latency = {"p50": 1.0, "p95": 2.0, "p99": p99}
        failed = {"Unavailable": errors} if errors else {}
        return Round(target, "a", 10, 10 - errors, failed, rps, latency, p99, 1.0)

    report = Report(call="c", calls=10, concurrency=2, connections=1)
    report.rounds = [one("jobs", 100, 9, 0), one("jobs", 300, 3, 1), one("jobs", 200, 5, 0)]
    summary = report.summary()["jobs"]
    assert (summary["calls_per_s"], summary["p99_ms"], summary["errors"]) == (200, 5, 1)
    assert report.table().splitlines()[1].split()[:3] == ["jobs", "3", "200"]


def test_collapsed_stacks_are_summarised_by_function() -> None:
    stacks = "main;serve;verify 6\nmain;serve;encode 3\nmain;idle 1\n"
    profile = summarise_stacks(stacks, top=2)
    assert profile["samples"] == 10
    assert profile["self_pct"] == [("verify", 60.0), ("encode", 30.0)]
    assert profile["total_pct"] == [("main", 100.0), ("serve", 90.0)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tiny_ghz_run_on_its_own_mesh_reports_every_call_ok(tmp_path: Path) -> None:
    if not (GHZ.is_file() and os.access(GHZ, os.X_OK)):
        missing_server(f"{GHZ} is absent (bash scripts/ensure-tools.sh ghz builds it)")
    assert PROTOSET.is_file(), "the generated descriptor set (scripts/contracts.py gen)"
    out = tmp_path / "ghz.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.grpc_ghz",
            *("--calls", "20", "--concurrency", "4", "--rounds", "1", "--warmup", "5"),
            *("--timeout-s", "60", "--json", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header, *rows = done.stdout.splitlines()[1:4]
    assert header.split()[:3] == ["target", "rounds", "calls/s"]
    assert [row.split()[0] for row in rows] == ["jobs", "edge"]
    report = json.loads(out.read_text())
    assert report["call"] == "gouache.jobs.v1.JobsService.ListModels"
    assert [(r["target"], r["calls"], r["ok"], r["errors"]) for r in report["rounds"]] == [
        ("jobs", 20, 20, {}),
        ("edge", 20, 20, {}),
    ]
    for summary in report["summary"].values():
        assert summary["calls_per_s"] > 0
        assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert "<token>" in " ".join(report["ghz_command"])
