"""Job SLO metrics in the real registry: outcomes, latency per model version, jobs in flight."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import REGISTRY

from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionProgress,
    ExecutionSucceeded,
    JobStatus,
)
from services.jobs.metrics import InFlightSampler
from tests.unit.jobs.conftest import Harness

VERSION = "gatys.lite0-v1"  # what the default alias resolves to in the test seed


def _value(name: str, labels: Mapping[str, str]) -> float:
    return REGISTRY.get_sample_value(name, dict(labels)) or 0.0


def _finished(outcome: str) -> float:
    return _value("gouache_jobs_finished_total", {"model_version": VERSION, "outcome": outcome})


def _latency_count() -> float:
    return _value("gouache_job_duration_seconds_count", {"model_version": VERSION})


def _in_flight(state: str) -> float | None:
    return REGISTRY.get_sample_value("gouache_jobs_in_flight", {"state": state})


async def test_each_final_job_is_counted_once_by_outcome_and_successes_are_timed(
    jobs: Harness,
) -> None:
    before = {o: _finished(o) for o in ("succeeded", "failed", "canceled")}
    latency_before = _latency_count()

    ok_id, failed_id, canceled_id = [(await jobs.create()).job_id for _ in range(3)]
    await jobs.app.apply_execution(new_id("evt"), ok_id, ExecutionProgress(0.5))
    assert _finished("succeeded") == before["succeeded"]  # running is not final
    succeeded_event = new_id("evt")
    await jobs.app.apply_execution(succeeded_event, ok_id, ExecutionSucceeded("img_result"))
    # A redelivered event changes nothing and counts nothing.
    await jobs.app.apply_execution(succeeded_event, ok_id, ExecutionSucceeded("img_result"))
    await jobs.app.apply_execution(new_id("evt"), failed_id, ExecutionFailed("INTERNAL", "boom"))
    for _ in range(2):  # canceling a canceled job returns it as it is
        await jobs.stub.CancelJob(
            jobs_pb2.CancelJobRequest(job_id=canceled_id), metadata=jobs.auth(), timeout=10
        )

    assert {o: _finished(o) - before[o] for o in before} == {
        "succeeded": 1,
        "failed": 1,
        "canceled": 1,
    }
    assert _latency_count() - latency_before == 1


async def test_jobs_in_flight_are_counted_in_the_database_by_state(jobs: Harness) -> None:
    sampler = InFlightSampler(jobs.store.count_unfinished, interval_s=60)
    try:
        assert await sampler.sample() == {"pending": 0, "running": 0}
        assert (_in_flight("pending"), _in_flight("running")) == (0, 0)

        created = [(await jobs.create()).job_id for _ in range(3)]
        await jobs.app.apply_execution(new_id("evt"), created[0], ExecutionProgress(0.1))
        await jobs.app.apply_execution(new_id("evt"), created[1], ExecutionSucceeded("img_r"))
        assert await sampler.sample() == {"pending": 1, "running": 1}
        assert (_in_flight("pending"), _in_flight("running")) == (1, 1)
    finally:
        await sampler.stop()
    assert _in_flight("pending") is None


async def test_a_failing_count_removes_the_series_instead_of_leaving_them_stale() -> None:
    counts: list[Mapping[JobStatus, int]] = [{JobStatus.PENDING: 4}]

    async def count() -> Mapping[JobStatus, int]:
        if not counts:
            raise ConnectionError("database unreachable")
        return counts.pop()

    sampler = InFlightSampler(count, interval_s=60)
    assert await sampler.sample() == {"pending": 4, "running": 0}
    assert _in_flight("pending") == 4
    assert await sampler.sample() is None
    assert _in_flight("pending") is None
    assert _in_flight("running") is None
