"""Feedback rules without a network: validation, percentiles, aggregates, ownership."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.feedback.domain import (
    FAILED,
    SUCCEEDED,
    FeedbackService,
    InvalidOutcome,
    JobOutcome,
    OutcomeWait,
    Rating,
    UsageQuery,
    UsageRecord,
    VersionRecords,
    aggregate,
    percentile,
    usage_query,
    validate_model_version,
    validate_rating,
    validate_since,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
OWNER = Principal(user_id="usr_owner", role="user", scopes=frozenset({"write:jobs"}))
STRANGER = Principal(user_id="usr_other", role="user", scopes=frozenset({"write:jobs"}))


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 101):
        values = [rng.uniform(0, 10_000) for _ in range(size)]
        for q in (0, 50, 95, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_known_values() -> None:
    values = list(range(10, 0, -1))
    assert percentile(values, 50) == 5.5
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile([], 95) == 0.0
    assert percentile([42], 50) == 42.0
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1], 101)


def test_aggregate() -> None:
    stats = aggregate(
        VersionRecords(
            model_version="m",
            jobs_succeeded=3,
            jobs_failed=1,
            latencies_ms=[100, 300, 200],
            ratings_count=2,
            ratings_sum=7,
        )
    )
    assert stats.error_rate == 0.25
    assert stats.latency_p50_ms == 200
    assert stats.latency_p95_ms == pytest.approx(290)
    assert stats.rating_mean == 3.5


def test_aggregate_without_data_is_zero_not_nan() -> None:
    stats = aggregate(VersionRecords("m", 0, 2, [], 0, 0))
    assert stats.error_rate == 1.0
    assert (stats.latency_p50_ms, stats.latency_p95_ms, stats.rating_mean) == (0.0, 0.0, 0.0)
    empty = aggregate(VersionRecords("m", 0, 0, [], 0, 0))
    assert empty.error_rate == 0.0


@pytest.mark.parametrize(
    ("job_id", "rating", "comments", "field"),
    [
        ("job_1", 0, "", "rating"),
        ("job_1", 6, "", "rating"),
        ("job_1", -3, "", "rating"),
        ("", 3, "", "job_id"),
        ("  ", 3, "", "job_id"),
        ("j" * 65, 3, "", "job_id"),
        ("job_1", 3, "c" * 2001, "comments"),
        ("job_1", 3, "nul\x00inside", "comments"),
        ("job_1", 3, "escape \x1b[31m", "comments"),
        ("job_1", 3, "half \udbed pair", "comments"),
    ],
)
def test_bad_rating_names_the_field(job_id: str, rating: int, comments: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_rating(job_id, rating, comments)
    assert caught.value.field == field
    assert field in caught.value.message


def test_good_rating_is_trimmed() -> None:
    assert validate_rating(" job_1 ", 5, " nice \n") == ("job_1", "nice")
    assert validate_rating("job_1", 5, "two\nlines\tand a tab") == (
        "job_1",
        "two\nlines\tand a tab",
    )
    assert validate_rating("job_1", 1, "c" * 2000) == ("job_1", "c" * 2000)


def test_model_version_is_required() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_model_version(" ")
    assert caught.value.field == "model_version"


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": ""},
        {"owner_id": ""},
        {"model_version": ""},
        {"status": "running"},
        {"latency_ms": -1},
        {"job_id": "j" * 65},
    ],
)
def test_invalid_outcomes_are_refused(change: dict[str, object]) -> None:
    good = JobOutcome("job_1", "usr_1", "m", SUCCEEDED, 10, NOW)
    with pytest.raises(InvalidOutcome):
        replace(good, **change)  # type: ignore[arg-type]


class _MemoryStore:
    def __init__(self, outcomes: list[JobOutcome]) -> None:
        self.outcomes = {o.job_id: o for o in outcomes}
        self.ratings: dict[str, Rating] = {}

    async def outcome(self, job_id: str) -> JobOutcome | None:
        return self.outcomes.get(job_id)

    async def save_rating(
        self, *, job_id: str, owner_id: str, rating: int, comments: str, at: datetime
    ) -> Rating:
        old = self.ratings.get(job_id)
        saved = Rating(
            feedback_id=old.feedback_id if old else f"fbk_{len(self.ratings)}",
            job_id=job_id,
            owner_id=owner_id,
            rating=rating,
            comments=comments,
            created_at=old.created_at if old else at,
            updated_at=at,
        )
        self.ratings[job_id] = saved
        return saved

    async def version_records(
        self, model_version: str | None, *, since: datetime | None = None
    ) -> list[VersionRecords]:
        finished = [
            o
            for o in self.outcomes.values()
            if model_version in (None, o.model_version)
            and (since is None or o.finished_at >= since)
        ]
        by_version: dict[str, list[JobOutcome]] = {}
        for outcome in finished:
            by_version.setdefault(outcome.model_version, []).append(outcome)
        return [
            VersionRecords(
                model_version=version,
                jobs_succeeded=sum(o.status == SUCCEEDED for o in outcomes),
                jobs_failed=sum(o.status != SUCCEEDED for o in outcomes),
                latencies_ms=[o.latency_ms for o in outcomes if o.status == SUCCEEDED],
                ratings_count=0,
                ratings_sum=0,
            )
            for version, outcomes in sorted(by_version.items())
        ]

    async def knows_version(self, model_version: str) -> bool:
        return any(o.model_version == model_version for o in self.outcomes.values())

    async def usage(self, query: UsageQuery) -> list[UsageRecord]:
        chosen = [
            o
            for o in self.outcomes.values()
            if query.user_id in (None, o.owner_id)
            and (query.since is None or o.finished_at >= query.since)
            and (query.until is None or o.finished_at < query.until)
        ]
        groups: dict[tuple[str, str], list[JobOutcome]] = {}
        for outcome in chosen:
            groups.setdefault((outcome.owner_id, outcome.model_version), []).append(outcome)
        return [
            UsageRecord(
                user_id=user,
                model_version=version,
                jobs_succeeded=sum(o.status == SUCCEEDED for o in group),
                jobs_failed=sum(o.status != SUCCEEDED for o in group),
                jobs_cached=sum(o.status == SUCCEEDED and o.cached for o in group),
                last_finished_at=max(o.finished_at for o in group),
                output_megapixels=sum(o.output_pixels for o in group if o.status == SUCCEEDED)
                / 1e6,
            )
            for (user, version), group in sorted(groups.items())
        ]


@pytest.fixture
def service() -> FeedbackService:
    return FeedbackService(
        _MemoryStore(
            [
                JobOutcome("job_ok", "usr_owner", "m", SUCCEEDED, 10, NOW),
                JobOutcome("job_bad", "usr_owner", "m", FAILED, 10, NOW),
            ]
        ),
        clock=lambda: NOW,
    )


async def test_second_rating_replaces_the_first(service: FeedbackService) -> None:
    first = await service.submit(OWNER, job_id="job_ok", rating=2, comments="meh")
    second = await service.submit(OWNER, job_id="job_ok", rating=5, comments="")
    assert second.feedback_id == first.feedback_id
    assert (second.rating, second.comments) == (5, "")


async def test_only_the_owner_may_rate(service: FeedbackService) -> None:
    with pytest.raises(NotFound, match="no finished job job_ok in this project") as other:
        await service.submit(STRANGER, job_id="job_ok", rating=3, comments="")
    with pytest.raises(NotFound) as unknown:
        await service.submit(OWNER, job_id="job_missing", rating=3, comments="")
    assert other.value.message.replace("job_ok", "X") == unknown.value.message.replace(
        "job_missing", "X"
    )
    assert "succeeded" in unknown.value.message


class _Jobs:
    """JobLookup as jobs answers it for OWNER: a status per job id, None for any other."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.asked: list[str] = []

    async def job_status(self, job_id: str) -> str | None:
        self.asked.append(job_id)
        return self.statuses.get(job_id)


def _waiting_service(jobs: _Jobs, timeout_s: float = 2.0) -> tuple[FeedbackService, _MemoryStore]:
    store = _MemoryStore([])
    service = FeedbackService(
        store, clock=lambda: NOW, jobs=jobs, outcome_wait=OutcomeWait(timeout_s, poll_s=0.01)
    )
    return service, store


async def test_a_rating_just_after_success_waits_for_the_outcome_event() -> None:
    # Jobs says succeeded before the outcome event has reached feedback (outbox, JetStream).
    service, store = _waiting_service(_Jobs({"job_new": SUCCEEDED}))

    async def event_arrives() -> None:
        await asyncio.sleep(0.05)
        store.outcomes["job_new"] = JobOutcome("job_new", "usr_owner", "m", SUCCEEDED, 10, NOW)

    arrival = asyncio.create_task(event_arrives())
    saved = await service.submit(OWNER, job_id="job_new", rating=4, comments="")
    await arrival
    assert (saved.job_id, saved.rating) == ("job_new", 4)


async def test_an_outcome_that_never_comes_is_unavailable_with_a_retry_hint() -> None:
    service, _ = _waiting_service(_Jobs({"job_new": SUCCEEDED}), timeout_s=0.05)
    with pytest.raises(Unavailable, match="retry in a few seconds") as late:
        await service.submit(OWNER, job_id="job_new", rating=4, comments="")
    assert late.value.reason == "outcome_pending"
    assert late.value.retry_after_s is not None


@pytest.mark.parametrize(
    ("status", "hint"),
    [("pending", "once GetJob says succeeded"), ("running", "once GetJob"), ("failed", "")],
)
async def test_a_job_not_succeeded_per_jobs_is_refused_at_once(status: str, hint: str) -> None:
    service, _ = _waiting_service(_Jobs({"job_new": status}), timeout_s=30)
    with pytest.raises(FailedPrecondition, match=f"job job_new is {status}") as refused:
        await asyncio.wait_for(service.submit(OWNER, job_id="job_new", rating=4, comments=""), 5)
    assert hint in refused.value.message
    assert ("once GetJob" in refused.value.message) == bool(hint)


async def test_a_job_jobs_does_not_show_the_caller_is_not_found_at_once() -> None:
    jobs = _Jobs({})
    service, _ = _waiting_service(jobs, timeout_s=30)
    with pytest.raises(NotFound, match="no finished job job_elsewhere"):
        await asyncio.wait_for(
            service.submit(OWNER, job_id="job_elsewhere", rating=4, comments=""), 5
        )
    assert jobs.asked == ["job_elsewhere"]


async def test_a_known_outcome_needs_no_question_to_jobs(service: FeedbackService) -> None:
    jobs = _Jobs({})
    store = _MemoryStore([JobOutcome("job_ok", "usr_owner", "m", SUCCEEDED, 10, NOW)])
    service = FeedbackService(store, clock=lambda: NOW, jobs=jobs)
    await service.submit(OWNER, job_id="job_ok", rating=5, comments="")
    with pytest.raises(NotFound):
        await service.submit(STRANGER, job_id="job_ok", rating=5, comments="")
    assert jobs.asked == []


async def test_a_project_member_rates_the_projects_job() -> None:
    store = _MemoryStore([JobOutcome("job_team", "prj_team", "m", SUCCEEDED, 10, NOW)])
    service = FeedbackService(store, clock=lambda: NOW)
    member = Principal(
        user_id="usr_member", role="user", scopes=frozenset({"write:jobs"}), project="prj_team"
    )
    saved = await service.submit(member, job_id="job_team", rating=5, comments="")
    assert saved.rating == 5
    with pytest.raises(NotFound):
        await service.submit(OWNER, job_id="job_team", rating=5, comments="")


async def test_failed_jobs_cannot_be_rated(service: FeedbackService) -> None:
    with pytest.raises(FailedPrecondition, match="only succeeded jobs"):
        await service.submit(OWNER, job_id="job_bad", rating=1, comments="")


async def test_unknown_version_is_not_found(service: FeedbackService) -> None:
    with pytest.raises(NotFound, match="nope"):
        await service.stats("nope")
    with pytest.raises(NotFound, match="nope"):
        await service.stats("nope", since=NOW - timedelta(minutes=1))
    assert [s.model_version for s in await service.all_stats()] == ["m"]


async def test_a_window_without_jobs_of_a_known_version_is_zeros() -> None:
    store = _MemoryStore(
        [
            JobOutcome("job_old", "usr_owner", "m", SUCCEEDED, 10, NOW - timedelta(hours=2)),
            JobOutcome("job_new", "usr_owner", "m", FAILED, 10, NOW),
        ]
    )
    service = FeedbackService(store, clock=lambda: NOW + timedelta(minutes=5))
    everything = await service.stats("m")
    assert (everything.jobs_succeeded, everything.jobs_failed) == (1, 1)
    recent = await service.stats("m", since=NOW)
    assert (recent.jobs_succeeded, recent.jobs_failed, recent.error_rate) == (0, 1, 1.0)
    quiet = await service.stats("m", since=NOW + timedelta(microseconds=1))
    assert quiet == aggregate(VersionRecords.empty("m"))
    assert (quiet.jobs_succeeded, quiet.error_rate, quiet.latency_p99_ms) == (0, 0.0, 0.0)


def test_window_start_bounds() -> None:
    assert validate_since(NOW, NOW) == NOW
    oldest = NOW - timedelta(days=400)
    assert validate_since(oldest, NOW) == oldest
    for bad, reason in (
        (NOW + timedelta(microseconds=1), "since_in_future"),
        (oldest - timedelta(microseconds=1), "since_too_old"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            validate_since(bad, NOW)
        assert (caught.value.field, caught.value.reason) == ("since", reason)


def test_p99_is_computed_like_p95() -> None:
    latencies = list(range(1, 101))
    stats = aggregate(VersionRecords("m", 100, 0, latencies, 0, 0))
    assert stats.latency_p99_ms == pytest.approx(np.percentile(latencies, 99))
    assert stats.latency_p95_ms == pytest.approx(np.percentile(latencies, 95))


USAGE_NOW = datetime(2030, 6, 1, tzinfo=UTC)


def test_usage_query_scopes_users_and_checks_the_window() -> None:
    admin = Principal(user_id="usr_admin", role="admin")
    user = Principal(user_id="usr_1", role="user")
    everyone = usage_query(admin, user_id="", since=None, until=None, now=USAGE_NOW)
    assert everyone == UsageQuery(user_id=None, since=None, until=None)
    assert usage_query(admin, user_id=" usr_2 ", since=None, until=None, now=USAGE_NOW).user_id == (
        "usr_2"
    )
    assert usage_query(user, user_id="", since=None, until=None, now=USAGE_NOW).user_id == "usr_1"
    assert usage_query(user, user_id="usr_1", since=None, until=None, now=USAGE_NOW).user_id == (
        "usr_1"
    )
    with pytest.raises(PermissionDenied) as denied:
        usage_query(user, user_id="usr_2", since=None, until=None, now=USAGE_NOW)
    assert "set it to your own, usr_1" in denied.value.message
    hour = timedelta(hours=1)
    with pytest.raises(InvalidArgument) as backwards:
        usage_query(
            admin, user_id="", since=USAGE_NOW - hour, until=USAGE_NOW - hour, now=USAGE_NOW
        )
    assert backwards.value.field == "until"
    with pytest.raises(InvalidArgument):
        usage_query(admin, user_id="", since=USAGE_NOW + hour, until=None, now=USAGE_NOW)
    with pytest.raises(InvalidArgument):
        usage_query(admin, user_id="x" * 65, since=None, until=None, now=USAGE_NOW)
