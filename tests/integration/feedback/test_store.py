"""The feedback store on SQLite and PostgreSQL: idempotent outcomes, ratings, aggregates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import create_engine
from gouache.runtime.context import Principal
from gouache.runtime.errors import NotFound, PermissionDenied
from services.feedback.domain import (
    FAILED,
    SUCCEEDED,
    FeedbackService,
    JobOutcome,
    UsageQuery,
    UsageRecord,
)
from services.feedback.store import FeedbackDatabase

NOW = datetime(2030, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[FeedbackDatabase]:
    database = FeedbackDatabase(create_engine(db_url))
    await database.create_schema()
    await database.create_schema()
    try:
        yield database
    finally:
        await database.close()


def _outcome(
    job_id: str,
    *,
    version: str = "v1",
    status: str = SUCCEEDED,
    latency: int = 100,
    at: datetime = NOW,
) -> JobOutcome:
    return JobOutcome(job_id, "usr_1", version, status, latency, at)


async def test_an_event_is_recorded_once(database: FeedbackDatabase) -> None:
    assert await database.record_outcome(_outcome("job_1"), event_id="evt_1", at=NOW)
    assert not await database.record_outcome(_outcome("job_1"), event_id="evt_1", at=NOW)
    assert await database.outcome("job_1") == _outcome("job_1")
    records = await database.version_records("v1")
    assert records[0].jobs_succeeded == 1


async def test_an_outcome_keeps_its_result_pixels(database: FeedbackDatabase) -> None:
    sized = replace(_outcome("job_9"), output_pixels=4096)
    assert await database.record_outcome(sized, event_id="evt_9", at=NOW)
    assert await database.outcome("job_9") == sized


async def test_a_job_counts_once_and_the_latest_outcome_wins(database: FeedbackDatabase) -> None:
    await database.record_outcome(_outcome("job_1", status=FAILED), event_id="evt_1", at=NOW)
    later = _outcome("job_1", latency=900, at=NOW + timedelta(seconds=5))
    assert await database.record_outcome(later, event_id="evt_2", at=NOW)
    earlier = _outcome("job_1", status=FAILED, at=NOW - timedelta(seconds=5))
    assert await database.record_outcome(earlier, event_id="evt_3", at=NOW)
    assert await database.outcome("job_1") == later
    (records,) = await database.version_records(None)
    assert (records.jobs_succeeded, records.jobs_failed) == (1, 0)


async def test_aggregates_per_version(database: FeedbackDatabase) -> None:
    latencies = [120, 80, 400, 250, 1000, 60, 90, 300, 200, 150]
    for index, latency in enumerate(latencies):
        await database.record_outcome(
            _outcome(f"job_{index}", latency=latency), event_id=f"e{index}", at=NOW
        )
    await database.record_outcome(
        _outcome("job_f1", status=FAILED, latency=5), event_id="f1", at=NOW
    )
    await database.record_outcome(
        _outcome("job_w1", version="v2", latency=7), event_id="w1", at=NOW
    )
    service = FeedbackService(database, clock=lambda: NOW)
    owner = Principal(user_id="usr_1", role="user")
    await service.submit(owner, job_id="job_0", rating=1, comments="")
    await service.submit(owner, job_id="job_1", rating=4, comments="ok")
    await service.submit(owner, job_id="job_0", rating=3, comments="changed my mind")
    stats = await service.stats("v1")
    assert (stats.jobs_succeeded, stats.jobs_failed) == (10, 1)
    assert stats.error_rate == pytest.approx(1 / 11)
    assert stats.latency_p50_ms == pytest.approx(175)
    assert stats.latency_p95_ms == pytest.approx(730)
    assert (stats.ratings_count, stats.rating_mean) == (2, 3.5)
    assert [s.model_version for s in await service.all_stats()] == ["v1", "v2"]
    assert await database.version_records("v3") == []


async def test_rating_is_replaced_in_place(database: FeedbackDatabase) -> None:
    await database.record_outcome(_outcome("job_1"), event_id="evt_1", at=NOW)
    first = await database.save_rating(
        job_id="job_1", owner_id="usr_1", rating=2, comments="a", at=NOW
    )
    later = NOW + timedelta(minutes=1)
    second = await database.save_rating(
        job_id="job_1", owner_id="usr_1", rating=5, comments="b", at=later
    )
    assert second.feedback_id == first.feedback_id
    assert second.created_at == NOW
    assert second.updated_at == later
    assert (second.rating, second.comments) == (5, "b")


async def test_window_edges(database: FeedbackDatabase) -> None:
    edge = NOW - timedelta(minutes=1)
    tick = timedelta(microseconds=1)
    for job_id, status, latency, at in (
        ("job_before", SUCCEEDED, 900, edge - tick),
        ("job_at", SUCCEEDED, 100, edge),
        ("job_after", FAILED, 5, edge + tick),
        ("job_other", SUCCEEDED, 7, edge + tick),
    ):
        version = "v2" if job_id == "job_other" else "v1"
        await database.record_outcome(
            _outcome(job_id, version=version, status=status, latency=latency, at=at),
            event_id=f"evt_{job_id}",
            at=NOW,
        )
    for job_id, rating in (("job_before", 1), ("job_at", 4)):
        await database.save_rating(
            job_id=job_id, owner_id="usr_1", rating=rating, comments="", at=NOW
        )

    (everything,) = await database.version_records("v1")
    assert (everything.jobs_succeeded, everything.jobs_failed) == (2, 1)
    (window,) = await database.version_records("v1", since=edge)
    # A job that finished exactly at since counts; one a microsecond earlier does not.
    assert (window.jobs_succeeded, window.jobs_failed) == (1, 1)
    assert list(window.latencies_ms) == [100.0]
    assert (window.ratings_count, window.ratings_sum) == (1, 4)
    (later,) = await database.version_records("v1", since=edge + tick)
    assert (later.jobs_succeeded, later.jobs_failed, later.ratings_count) == (0, 1, 0)
    assert await database.version_records("v1", since=edge + 2 * tick) == []
    assert [r.model_version for r in await database.version_records(None, since=edge)] == [
        "v1",
        "v2",
    ]
    assert await database.knows_version("v1")
    assert not await database.knows_version("v3")

    service = FeedbackService(database, clock=lambda: NOW)
    quiet = await service.stats("v1", since=NOW - timedelta(seconds=1))
    assert (quiet.jobs_succeeded, quiet.jobs_failed, quiet.ratings_count) == (0, 0, 0)
    windowed = await service.stats("v1", since=edge)
    assert (windowed.error_rate, windowed.latency_p99_ms, windowed.rating_mean) == (0.5, 100, 4.0)
    with pytest.raises(NotFound):
        await service.stats("v3", since=edge)


async def test_cached_jobs_are_rateable_but_left_out_of_version_stats(
    database: FeedbackDatabase,
) -> None:
    await database.record_outcome(_outcome("job_ran", latency=400), event_id="e1", at=NOW)
    hit = JobOutcome("job_hit", "usr_1", "v1", SUCCEEDED, 0, NOW, cached=True)
    await database.record_outcome(hit, event_id="e2", at=NOW)
    assert await database.outcome("job_hit") == hit
    service = FeedbackService(database, clock=lambda: NOW)
    owner = Principal(user_id="usr_1", role="user")
    await service.submit(owner, job_id="job_hit", rating=5, comments="")
    stats = await service.stats("v1")
    # The hit ran no model: one job, its 400 ms; its rating is the version's image's.
    assert (stats.jobs_succeeded, stats.jobs_failed) == (1, 0)
    assert stats.latency_p50_ms == pytest.approx(400)
    assert (stats.ratings_count, stats.rating_mean) == (1, 5.0)


async def test_usage_per_user_and_version(database: FeedbackDatabase) -> None:
    tick = timedelta(seconds=1)
    outcomes = [
        JobOutcome("job_1", "usr_1", "v1", SUCCEEDED, 100, NOW, output_pixels=1_500_000),
        JobOutcome("job_2", "usr_1", "v1", SUCCEEDED, 0, NOW + tick, cached=True),
        JobOutcome("job_3", "usr_1", "v1", FAILED, 50, NOW + 2 * tick),
        JobOutcome("job_4", "usr_1", "v2", SUCCEEDED, 100, NOW, output_pixels=640 * 480),
        JobOutcome("job_5", "usr_2", "v1", FAILED, 10, NOW + 3 * tick),
    ]
    for index, outcome in enumerate(outcomes):
        await database.record_outcome(outcome, event_id=f"evt_{index}", at=NOW)
    everyone = await database.usage(UsageQuery(user_id=None, since=None, until=None))
    assert everyone == [
        UsageRecord("usr_1", "v1", 2, 1, 1, NOW + 2 * tick, 1.5, project_id="usr_1"),
        UsageRecord("usr_1", "v2", 1, 0, 0, NOW, 0.3072, project_id="usr_1"),
        UsageRecord("usr_2", "v1", 0, 1, 0, NOW + 3 * tick, project_id="usr_2"),
    ]
    window = await database.usage(
        UsageQuery(user_id="usr_1", since=NOW + tick, until=NOW + 2 * tick)
    )
    assert window == [UsageRecord("usr_1", "v1", 1, 0, 1, NOW + tick, project_id="usr_1")]
    assert await database.usage(UsageQuery(user_id="usr_3", since=None, until=None)) == []


async def test_usage_is_scoped_by_who_asks(database: FeedbackDatabase) -> None:
    await database.record_outcome(
        JobOutcome("job_1", "usr_1", "v1", SUCCEEDED, 1, NOW), event_id="e1", at=NOW
    )
    await database.record_outcome(
        JobOutcome("job_2", "usr_2", "v1", SUCCEEDED, 1, NOW), event_id="e2", at=NOW
    )
    service = FeedbackService(database, clock=lambda: NOW + timedelta(days=1))
    admin = Principal(user_id="usr_admin", role="admin")
    user = Principal(user_id="usr_2", role="user")
    assert [r.user_id for r in await service.usage(admin)] == ["usr_1", "usr_2"]
    assert [r.user_id for r in await service.usage(user)] == ["usr_2"]
    with pytest.raises(PermissionDenied, match="only admins"):
        await service.usage(user, user_id="usr_1")
