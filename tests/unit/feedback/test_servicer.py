"""FeedbackService in process over a SQLite file, with TestSigner tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.db import create_engine
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, ServiceSpec, start_service
from gouache.runtime.settings import ServiceSettings
from services.feedback.domain import FAILED, SUCCEEDED, FeedbackService, JobOutcome
from services.feedback.server import POLICY, SERVICE
from services.feedback.servicer import FeedbackServicer
from services.feedback.store import FeedbackDatabase
from tests.helpers.tokens import TestSigner

NOW = datetime(2030, 1, 1, tzinfo=UTC)
OWNER = "usr_owner"


@dataclass
class Harness:
    stub: feedback_pb2_grpc.FeedbackServiceStub
    signer: TestSigner
    database: FeedbackDatabase

    def md(self, sub: str = OWNER, **kwargs: object) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.signer.token(sub, **kwargs)}"),)  # type: ignore[arg-type]


@pytest.fixture
async def feedback(tmp_path: Path) -> AsyncIterator[Harness]:
    database = FeedbackDatabase(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"))
    await database.create_schema()
    outcomes = [
        JobOutcome("job_a1", OWNER, "gatys.lite0-v1", SUCCEEDED, 1000, NOW),
        JobOutcome("job_a2", OWNER, "gatys.lite0-v1", SUCCEEDED, 3000, NOW),
        JobOutcome("job_a3", "usr_else", "gatys.lite0-v1", FAILED, 50, NOW),
        JobOutcome("job_b1", OWNER, "gatys.lite0-fast", SUCCEEDED, 200, NOW),
    ]
    for index, outcome in enumerate(outcomes):
        await database.record_outcome(outcome, event_id=f"evt_{index}", at=NOW)
    servicer = FeedbackServicer(FeedbackService(database))
    signer = TestSigner()
    spec = ServiceSpec(
        name="feedback",
        service_names=[SERVICE],
        register=lambda server: feedback_pb2_grpc.add_FeedbackServiceServicer_to_server(
            servicer, server
        ),
        policy=POLICY,
    )
    running: RunningService = await start_service(
        ServiceSettings(), spec, TokenVerifier(signer.fetch)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield Harness(feedback_pb2_grpc.FeedbackServiceStub(channel), signer, database)
    await running.stop(0)
    await database.close()


async def _fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


async def test_rating_and_stats(feedback: Harness) -> None:
    first = await feedback.stub.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(job_id="job_a1", rating=2, comments="blurry"),
        metadata=feedback.md(),
    )
    assert first.feedback_id.startswith("fbk_")
    assert (first.job_id, first.rating) == ("job_a1", 2)
    again = await feedback.stub.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(job_id="job_a1", rating=4), metadata=feedback.md()
    )
    assert again.feedback_id == first.feedback_id
    assert again.created_at == first.created_at
    await feedback.stub.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(job_id="job_a2", rating=5), metadata=feedback.md()
    )
    response = await feedback.stub.GetModelVersionStats(
        feedback_pb2.GetModelVersionStatsRequest(model_version="gatys.lite0-v1"),
        metadata=feedback.md(scopes=("read:models",)),
    )
    stats = response
    assert (stats.jobs_succeeded, stats.jobs_failed) == (2, 1)
    assert stats.error_rate == pytest.approx(1 / 3)
    assert stats.latency_p50_ms == 2000
    assert stats.latency_p95_ms == pytest.approx(2900)
    assert stats.latency_p99_ms == pytest.approx(2980)
    assert (stats.ratings_count, stats.rating_mean) == (2, 4.5)
    listed = await feedback.stub.ListModelVersionStats(
        feedback_pb2.ListModelVersionStatsRequest(), metadata=feedback.md()
    )
    assert [s.model_version for s in listed.stats] == ["gatys.lite0-fast", "gatys.lite0-v1"]
    assert listed.stats[1] == stats
    assert listed.stats[0].ratings_count == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"job_id": "job_a1", "rating": 0}, "rating"),
        ({"job_id": "job_a1", "rating": 6}, "rating"),
        ({"job_id": "", "rating": 3}, "job_id"),
        ({"job_id": "job_a1", "rating": 3, "comments": "x" * 2001}, "comments"),
    ],
)
async def test_bad_feedback_is_invalid_argument(
    feedback: Harness, fields: dict[str, object], field: str
) -> None:
    details = await _fails(
        feedback.stub.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(**fields),  # type: ignore[arg-type]
            metadata=feedback.md(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in details


async def test_another_users_job_is_not_found(feedback: Harness) -> None:
    request = feedback_pb2.SubmitFeedbackRequest(job_id="job_a1", rating=1)
    details = await _fails(
        feedback.stub.SubmitFeedback(request, metadata=feedback.md("usr_else")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "no finished job job_a1 in this project" in details
    unknown = await _fails(
        feedback.stub.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(job_id="job_zz", rating=1), metadata=feedback.md()
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "finished" in unknown


async def test_failed_job_cannot_be_rated(feedback: Harness) -> None:
    await _fails(
        feedback.stub.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(job_id="job_a3", rating=1),
            metadata=feedback.md("usr_else"),
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_scopes_are_enforced(feedback: Harness) -> None:
    await _fails(
        feedback.stub.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(job_id="job_a1", rating=3),
            metadata=feedback.md(scopes=("read:jobs", "read:models")),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await _fails(
        feedback.stub.ListModelVersionStats(
            feedback_pb2.ListModelVersionStatsRequest(), metadata=feedback.md(scopes=("read:jobs",))
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(model_version="gatys.lite0-v1")
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(model_version="gatys.lite0-v1"),
            metadata=feedback.md(ttl_s=-60),
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )


async def test_unknown_or_missing_version(feedback: Harness) -> None:
    details = await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(model_version="adain-9"),
            metadata=feedback.md(),
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "adain-9" in details
    await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(), metadata=feedback.md()
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def test_stats_since_a_moment(feedback: Harness) -> None:
    now = datetime.now(UTC)
    version = "adain.lite0-v2"
    outcomes = [
        JobOutcome("job_c1", OWNER, version, SUCCEEDED, 400, now - timedelta(minutes=10)),
        JobOutcome("job_c2", OWNER, version, FAILED, 30, now - timedelta(minutes=2)),
        JobOutcome("job_c3", OWNER, version, SUCCEEDED, 600, now - timedelta(minutes=1)),
    ]
    for outcome in outcomes:
        await feedback.database.record_outcome(outcome, event_id=f"e-{outcome.job_id}", at=now)
    for job_id, rating in (("job_c1", 1), ("job_c3", 5)):
        await feedback.stub.SubmitFeedback(
            feedback_pb2.SubmitFeedbackRequest(job_id=job_id, rating=rating),
            metadata=feedback.md(),
        )
    operator = feedback.md("usr_operator", role="operator", scopes=("read:models",))

    async def stats(**fields: object) -> feedback_pb2.ModelVersionStats:
        request = feedback_pb2.GetModelVersionStatsRequest(model_version=version, **fields)  # type: ignore[arg-type]
        response: feedback_pb2.ModelVersionStats = await feedback.stub.GetModelVersionStats(
            request, metadata=operator
        )
        return response

    every = await stats()
    assert (every.jobs_succeeded, every.jobs_failed, every.ratings_count) == (2, 1, 2)
    window = await stats(since=_stamp(now - timedelta(minutes=5)))
    assert (window.jobs_succeeded, window.jobs_failed) == (1, 1)
    assert window.error_rate == pytest.approx(0.5)
    assert (window.latency_p50_ms, window.latency_p99_ms) == (600, 600)
    # Only the ratings of the jobs in the window.
    assert (window.ratings_count, window.rating_mean) == (1, 5.0)
    # Nothing finished in the last 30 s: zeros, not NOT_FOUND.
    quiet = await stats(since=_stamp(now - timedelta(seconds=30)))
    assert quiet == feedback_pb2.ModelVersionStats(model_version=version)

    details = await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(
                model_version="adain-9", since=_stamp(now - timedelta(minutes=1))
            ),
            metadata=operator,
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "adain-9" in details


@pytest.mark.parametrize(
    ("since", "needle"),
    [
        (lambda now: _stamp(now + timedelta(minutes=5)), "future"),
        (lambda now: _stamp(now - timedelta(days=401)), "400 days"),
        (lambda now: Timestamp(seconds=int(now.timestamp()), nanos=-1), "since"),
    ],
)
async def test_bad_since_is_invalid_argument(feedback: Harness, since: object, needle: str) -> None:
    stamp = since(datetime.now(UTC))  # type: ignore[operator]
    details = await _fails(
        feedback.stub.GetModelVersionStats(
            feedback_pb2.GetModelVersionStatsRequest(model_version="gatys.lite0-v1", since=stamp),
            metadata=feedback.md(),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert needle in details


def _usage_rows(response: feedback_pb2.GetUsageResponse) -> list[tuple[str, str, int, int, int]]:
    return [
        (u.user_id, u.model_version, u.jobs_succeeded, u.jobs_failed, u.jobs_cached)
        for u in response.usage
    ]


async def test_usage_admins_see_everyone_users_themselves(feedback: Harness) -> None:
    everyone = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(), metadata=feedback.md("usr_admin", role="admin")
    )
    assert _usage_rows(everyone) == [
        ("usr_else", "gatys.lite0-v1", 0, 1, 0),
        (OWNER, "gatys.lite0-fast", 1, 0, 0),
        (OWNER, "gatys.lite0-v1", 2, 0, 0),
    ]
    assert everyone.usage[0].last_finished_at.ToDatetime(tzinfo=UTC) == NOW
    one = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(user_id="usr_else"),
        metadata=feedback.md("usr_admin", role="admin"),
    )
    assert _usage_rows(one) == [("usr_else", "gatys.lite0-v1", 0, 1, 0)]
    own = await feedback.stub.GetUsage(feedback_pb2.GetUsageRequest(), metadata=feedback.md())
    assert [row[0] for row in _usage_rows(own)] == [OWNER, OWNER]
    named = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(user_id=OWNER), metadata=feedback.md()
    )
    assert named == own
    details = await _fails(
        feedback.stub.GetUsage(
            feedback_pb2.GetUsageRequest(user_id="usr_else"), metadata=feedback.md()
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "only admins may read another user's usage" in details
    assert OWNER in details
    await _fails(
        feedback.stub.GetUsage(
            feedback_pb2.GetUsageRequest(), metadata=feedback.md(scopes=("read:models",))
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_usage_window(feedback: Harness) -> None:
    # The outcomes finished at NOW (2030); the window is checked against the real clock.
    now = datetime.now(UTC)
    admin = feedback.md("usr_admin", role="admin")
    since = Timestamp()
    since.FromDatetime(now - timedelta(hours=1))
    until = Timestamp()
    until.FromDatetime(NOW + timedelta(seconds=1))
    inside = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(since=since, until=until), metadata=admin
    )
    assert len(inside.usage) == 3
    until.FromDatetime(NOW)
    before = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(since=since, until=until), metadata=admin
    )
    assert list(before.usage) == []
    backwards = Timestamp()
    backwards.FromDatetime(now - timedelta(hours=2))
    details = await _fails(
        feedback.stub.GetUsage(
            feedback_pb2.GetUsageRequest(since=since, until=backwards), metadata=admin
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "must be after since" in details
    future = Timestamp()
    future.FromDatetime(now + timedelta(days=1))
    details = await _fails(
        feedback.stub.GetUsage(feedback_pb2.GetUsageRequest(since=future), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "in the future" in details
    await _fails(
        feedback.stub.GetUsage(feedback_pb2.GetUsageRequest(user_id="u" * 65), metadata=admin),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
