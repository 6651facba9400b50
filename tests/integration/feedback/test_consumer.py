"""The feedback service against real NATS JetStream: outcome events become stats, once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from gouache.bus.jetstream import HEADER_EVENT_TYPE, connect, ensure_streams, publish
from gouache.bus.subjects import JOBS_FAILED, JOBS_STREAM, JOBS_SUCCEEDED
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, start_service
from services.feedback.server import build
from services.feedback.settings import FeedbackSettings
from tests.fixtures.nats import NatsServer
from tests.helpers.tokens import TestSigner

OWNER = "usr_integration"


@dataclass
class Mesh:
    stub: feedback_pb2_grpc.FeedbackServiceStub
    signer: TestSigner
    js: JetStreamContext
    durable: str
    version: str

    def md(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.signer.token(OWNER)}"),)

    async def stats(self) -> feedback_pb2.ModelVersionStats | None:
        try:
            response = await self.stub.GetModelVersionStats(
                feedback_pb2.GetModelVersionStatsRequest(model_version=self.version),
                metadata=self.md(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        stats: feedback_pb2.ModelVersionStats = response
        return stats

    async def settled(self) -> bool:
        """Every message on the consumer's subjects was delivered and acknowledged."""
        info = await self.js.consumer_info(JOBS_STREAM.name, self.durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def wait_until(condition: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    """Polls condition until it holds; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def _finished(seconds: int = 0) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2030, 1, 1, 0, 0, seconds, tzinfo=UTC))
    return stamp


def succeeded(event_id: str, job_id: str, version: str, latency_ms: int) -> events_pb2.JobSucceeded:
    return events_pb2.JobSucceeded(
        event_id=event_id,
        job_id=job_id,
        owner_id=OWNER,
        model_version=version,
        result_image_id=f"img_{job_id}",
        latency_ms=latency_ms,
        finished_at=_finished(),
    )


@pytest.fixture
async def mesh(db_url: str, nats_server: NatsServer) -> AsyncIterator[Mesh]:
    signer = TestSigner()
    settings = FeedbackSettings(port=0, database_url=db_url, nats_url=nats_server.url)
    spec, verifier = await build(settings, verifier=TokenVerifier(signer.fetch))
    connection: NATS
    connection, js = await connect(nats_server.url, name="feedback-tests")
    await ensure_streams(js)
    running: RunningService = await start_service(settings, spec, verifier)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Mesh(
                feedback_pb2_grpc.FeedbackServiceStub(channel),
                signer,
                js,
                settings.consumer_name,
                f"it-{uuid.uuid4().hex[:10]}",
            )
    finally:
        await running.stop(0)
        await connection.close()


async def test_outcome_events_become_stats_once(mesh: Mesh) -> None:
    version = mesh.version
    prefix = uuid.uuid4().hex[:8]
    for index, latency in enumerate([100, 200, 300]):
        event = succeeded(f"evt_{prefix}_{index}", f"job_{prefix}_{index}", version, latency)
        await publish(mesh.js, JOBS_SUCCEEDED, event, event_id=event.event_id)
    failed = events_pb2.JobFailed(
        event_id=f"evt_{prefix}_f",
        job_id=f"job_{prefix}_f",
        owner_id=OWNER,
        model_version=version,
        error_code="INTERNAL",
        error_message="boom",
        latency_ms=40,
        finished_at=_finished(),
    )
    await publish(mesh.js, JOBS_FAILED, failed, event_id=failed.event_id)

    async def counted(succeeded_jobs: int, failed_jobs: int) -> bool:
        stats = await mesh.stats()
        return stats is not None and (stats.jobs_succeeded, stats.jobs_failed) == (
            succeeded_jobs,
            failed_jobs,
        )

    await wait_until(lambda: counted(3, 1))
    stats = await mesh.stats()
    assert stats is not None
    assert stats.error_rate == pytest.approx(0.25)
    assert stats.latency_p50_ms == pytest.approx(200)
    assert stats.latency_p95_ms == pytest.approx(290)

    # The same event again: JetStream drops it (same Nats-Msg-Id) ...
    again = succeeded(f"evt_{prefix}_0", f"job_{prefix}_0", version, 100)
    ack = await publish(mesh.js, JOBS_SUCCEEDED, again, event_id=again.event_id)
    assert ack.duplicate
    # ... and when it gets past JetStream's window (no message id header), feedback
    # recognises the event id itself.
    await mesh.js.publish(
        JOBS_SUCCEEDED,
        again.SerializeToString(),
        headers={HEADER_EVENT_TYPE: again.DESCRIPTOR.full_name},
    )
    # A republished outcome under a new event id still counts the job once.
    renamed = succeeded(f"evt_{prefix}_0b", f"job_{prefix}_0", version, 100)
    await publish(mesh.js, JOBS_SUCCEEDED, renamed, event_id=renamed.event_id)
    sentinel = succeeded(f"evt_{prefix}_s", f"job_{prefix}_s", version, 400)
    await publish(mesh.js, JOBS_SUCCEEDED, sentinel, event_id=sentinel.event_id)
    await wait_until(lambda: counted(4, 1))
    await wait_until(mesh.settled)
    assert await counted(4, 1)

    rated = await mesh.stub.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(job_id=f"job_{prefix}_1", rating=4, comments="nice"),
        metadata=mesh.md(),
    )
    assert rated.feedback_id
    stats = await mesh.stats()
    assert stats is not None
    assert (stats.ratings_count, stats.rating_mean) == (1, 4.0)
    listed = await mesh.stub.ListModelVersionStats(
        feedback_pb2.ListModelVersionStatsRequest(), metadata=mesh.md()
    )
    assert version in {s.model_version for s in listed.stats}


async def test_a_cached_job_is_rateable_but_not_in_the_version_stats(mesh: Mesh) -> None:
    prefix = uuid.uuid4().hex[:8]
    ran = succeeded(f"evt_{prefix}_r", f"job_{prefix}_r", mesh.version, 300)
    hit = succeeded(f"evt_{prefix}_h", f"job_{prefix}_h", mesh.version, 0)
    hit.cached = True
    for event in (hit, ran):
        await publish(mesh.js, JOBS_SUCCEEDED, event, event_id=event.event_id)
    await wait_until(mesh.settled)
    rated = await mesh.stub.SubmitFeedback(
        feedback_pb2.SubmitFeedbackRequest(job_id=hit.job_id, rating=5, comments=""),
        metadata=mesh.md(),
    )
    assert rated.feedback_id
    stats = await mesh.stats()
    assert stats is not None
    assert (stats.jobs_succeeded, stats.jobs_failed) == (1, 0)
    assert stats.latency_p50_ms == pytest.approx(300)
    assert (stats.ratings_count, stats.rating_mean) == (1, 5.0)


async def test_malformed_events_are_dropped_without_blocking(mesh: Mesh) -> None:
    prefix = uuid.uuid4().hex[:8]
    broken = succeeded(f"evt_{prefix}_x", "", mesh.version, 10)
    await publish(mesh.js, JOBS_SUCCEEDED, broken, event_id=broken.event_id)
    await mesh.js.publish(JOBS_SUCCEEDED, b"\xff\xffnot protobuf")
    good = succeeded(f"evt_{prefix}_ok", f"job_{prefix}", mesh.version, 10)
    await publish(mesh.js, JOBS_SUCCEEDED, good, event_id=good.event_id)

    async def good_counted() -> bool:
        stats = await mesh.stats()
        return stats is not None and stats.jobs_succeeded == 1

    await wait_until(good_counted)
    await wait_until(mesh.settled)
    stats = await mesh.stats()
    assert stats is not None
    assert stats.jobs_succeeded == 1
