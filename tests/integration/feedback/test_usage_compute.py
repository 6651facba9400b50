"""Usage in compute- and GPU-seconds, per day or month, and its CSV export, on SQLite and
PostgreSQL: the rows and sums of the outcomes recorded, exactly."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import create_engine
from gouache.runtime.context import Principal
from gouache.runtime.errors import InvalidArgument
from services.feedback.domain import FAILED, SUCCEEDED, FeedbackService, JobOutcome, UsageQuery
from services.feedback.store import FeedbackDatabase
from services.feedback.usage_csv import COLUMNS, usage_csv

# The last hour of October and the first of November (UTC), a month boundary between them.
OCT_31 = datetime(2030, 10, 31, 23, 30, tzinfo=UTC)
NOV_1 = datetime(2030, 11, 1, 0, 15, tzinfo=UTC)
NOV_2 = datetime(2030, 11, 2, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[FeedbackDatabase]:
    database = FeedbackDatabase(create_engine(db_url))
    await database.create_schema()
    try:
        yield database
    finally:
        await database.close()


OUTCOMES = [
    JobOutcome("job_1", "usr_a", "v1", SUCCEEDED, 900, OCT_31, output_pixels=10, compute_ms=1500),
    JobOutcome(
        "job_2", "usr_a", "v1", SUCCEEDED, 800, NOV_1, output_pixels=20, compute_ms=2001,
        device="cuda",
    ),
    JobOutcome("job_3", "usr_a", "v1", SUCCEEDED, 0, NOV_2, output_pixels=0, cached=True),
    JobOutcome("job_4", "usr_a", "v1", FAILED, 50, NOV_2),
    JobOutcome(
        "job_5", "usr_a", "v2", SUCCEEDED, 700, NOV_2, output_pixels=1_000_001,
        compute_ms=333, device="cpu",
    ),
    JobOutcome(
        "job_6", "usr_b", "v1", SUCCEEDED, 700, NOV_1, output_pixels=5, compute_ms=7,
        device="cuda",
    ),
]  # fmt: skip


async def _record(database: FeedbackDatabase) -> None:
    for index, outcome in enumerate(OUTCOMES):
        assert await database.record_outcome(outcome, event_id=f"evt_{index}", at=NOV_2)


async def test_an_outcome_keeps_its_compute_and_device(database: FeedbackDatabase) -> None:
    await _record(database)
    assert await database.outcome("job_2") == OUTCOMES[1]


async def test_usage_sums_compute_and_gpu_time(database: FeedbackDatabase) -> None:
    await _record(database)
    records = await database.usage(UsageQuery(user_id=None, since=None, until=None))
    summary = [
        (r.period, r.user_id, r.model_version, r.jobs_succeeded, r.jobs_failed, r.jobs_cached,
         r.compute_ms, r.gpu_ms, r.output_megapixels)
        for r in records
    ]  # fmt: skip
    assert summary == [
        ("", "usr_a", "v1", 3, 1, 1, 3501, 2001, pytest.approx(30e-6)),
        ("", "usr_a", "v2", 1, 0, 0, 333, 0, pytest.approx(1.000001)),
        ("", "usr_b", "v1", 1, 0, 0, 7, 7, pytest.approx(5e-6)),
    ]


async def test_usage_per_month_and_day(database: FeedbackDatabase) -> None:
    await _record(database)
    monthly = await database.usage(
        UsageQuery(user_id=None, since=None, until=None, group_by="month")
    )
    assert [(r.period, r.user_id, r.model_version, r.compute_ms) for r in monthly] == [
        ("2030-10", "usr_a", "v1", 1500),
        ("2030-11", "usr_a", "v1", 2001),
        ("2030-11", "usr_a", "v2", 333),
        ("2030-11", "usr_b", "v1", 7),
    ]
    daily = await database.usage(
        UsageQuery(user_id="usr_a", since=None, until=None, group_by="day")
    )
    assert [(r.period, r.model_version, r.jobs_succeeded, r.jobs_failed) for r in daily] == [
        ("2030-10-31", "v1", 1, 0),
        ("2030-11-01", "v1", 1, 0),
        ("2030-11-02", "v1", 1, 1),
        ("2030-11-02", "v2", 1, 0),
    ]


async def test_the_csv_of_a_month_has_exactly_its_rows_and_sums(
    database: FeedbackDatabase,
) -> None:
    await _record(database)
    service = FeedbackService(database, clock=lambda: NOV_2 + timedelta(days=1))
    admin = Principal(user_id="usr_admin", role="admin")
    november = await service.usage(
        admin, since=datetime(2030, 11, 1, tzinfo=UTC), until=datetime(2030, 12, 1, tzinfo=UTC),
        group_by="month",
    )  # fmt: skip
    document = usage_csv(november).decode()
    assert document.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(document, newline="")))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1:] == [
        ["2030-11", "usr_a", "usr_a", "v1", "2", "1", "1", "0.000020", "2.001", "2.001",
         "2030-11-02T09:00:00.123456Z"],
        ["2030-11", "usr_a", "usr_a", "v2", "1", "0", "0", "1.000001", "0.333", "0.000",
         "2030-11-02T09:00:00.123456Z"],
        ["2030-11", "usr_b", "usr_b", "v1", "1", "0", "0", "0.000005", "0.007", "0.007",
         "2030-11-01T00:15:00.000000Z"],
    ]  # fmt: skip


async def test_an_unknown_period_is_refused(database: FeedbackDatabase) -> None:
    service = FeedbackService(database, clock=lambda: NOV_2)
    with pytest.raises(InvalidArgument, match="group_by must be day or month") as caught:
        await service.usage(Principal(user_id="usr_a", role="user"), group_by="week")
    assert caught.value.field == "group_by"
