"""SIGKILL under load: `gouache up` restarts what dies, and every job ends exactly once.

Each test runs its own `gouache up` (free ports on 127.0.0.1) with four clients creating
adain and gatys-fast jobs, through `loadtests/chaos.py`, which bigger runs use too; the last
runs it with `--backend postgres` and kills and restarts its PostgreSQL and MinIO.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gouache.cli.local_minio import LocalMinio, MinioUnavailable
from gouache.cli.local_postgres import LocalPostgres, PostgresUnavailable
from loadtests.chaos import (
    POSTGRES_FAULTS,
    SERVICES_AND_NATS,
    ChaosOptions,
    run_chaos,
    start_up,
)
from tests.fixtures.gouache_up import GouacheUp, reachable_state_dir
from tests.fixtures.required import missing_server

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[GouacheUp]:
    running = start_up(tmp_path / "state")
    try:
        yield running
    finally:
        assert running.stop() == 0, running.output


@pytest.mark.timeout(150)
def test_killing_tiling_then_inference_under_load_every_job_succeeds(up: GouacheUp) -> None:
    report = run_chaos(up, ChaosOptions(clients=4, kills=("tiling", "inference")))
    summary = report.summary()
    assert [kill.component for kill in report.kills] == ["tiling", "inference"]
    assert all(kill.jobs_in_flight > 0 for kill in report.kills), summary
    assert report.up_running, up.output
    assert summary["by_status"] == {"succeeded": len(report.jobs)}, summary
    assert len(report.jobs) >= 8, summary
    assert not report.duplicates(), summary
    assert not report.missing_events(), summary


@pytest.mark.timeout(180)
def test_every_service_and_nats_killed_under_load_no_job_lost_or_duplicated(
    up: GouacheUp,
) -> None:
    report = run_chaos(up, ChaosOptions(clients=4, kills=SERVICES_AND_NATS, jobs_between=1))
    summary = report.summary()
    assert [kill.component for kill in report.kills] == list(SERVICES_AND_NATS)
    assert report.up_running, up.output
    assert not report.crash_loop_lines, up.output
    assert not report.lost(), summary
    assert not report.client_errors, summary
    assert not report.duplicates(), summary
    assert not report.missing_events(), summary
    # Nothing in this run makes a job fail for good: every one succeeds.
    assert summary["by_status"] == {"succeeded": len(report.jobs)}, summary


@pytest.fixture
def up_postgres() -> Iterator[GouacheUp]:
    """`gouache up --backend postgres`: its own PostgreSQL and MinIO, under load next."""
    try:
        LocalPostgres.locate(Path("unused"), 0, "")
        LocalMinio.locate(Path("unused"), 0, "", "")
    except (PostgresUnavailable, MinioUnavailable) as exc:
        missing_server(str(exc))
    with reachable_state_dir("gouache-chaos-") as base:
        running = start_up(base / "state", backend="postgres")
        try:
            yield running
        finally:
            assert running.stop() == 0, running.output


@pytest.mark.postgres
@pytest.mark.minio
@pytest.mark.timeout(240)
def test_postgres_killed_then_restarted_cleanly_and_minio_killed_under_load_every_job_succeeds(
    up_postgres: GouacheUp,
) -> None:
    report = run_chaos(up_postgres, ChaosOptions(clients=4, kills=POSTGRES_FAULTS))
    summary = report.summary()
    assert [(kill.component, kill.signal) for kill in report.kills] == [
        ("postgres", "SIGKILL"),
        ("postgres", "SIGINT"),
        ("minio", "SIGKILL"),
    ]
    assert all(kill.jobs_in_flight > 0 for kill in report.kills), summary
    assert report.up_running, up_postgres.output
    assert not report.crash_loop_lines, up_postgres.output
    assert not report.lost(), summary
    assert not report.client_errors, summary
    assert not report.duplicates(), summary
    assert not report.missing_events(), summary
    assert summary["by_status"] == {"succeeded": len(report.jobs)}, summary
