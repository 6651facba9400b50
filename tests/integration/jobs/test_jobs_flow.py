"""Jobs end to end over real JetStream and a real database: outbox, consumer, watch, webhooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from gouache import catalogue
from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from services.jobs.domain.webhooks import verify_signature
from services.jobs.store import outbox, processed_events
from tests.integration.jobs.conftest import Mesh, wait_until

SECRET = "whsec_0123456789abcdef"


async def _published(mesh: Mesh, subject: str, job_id: str, count: int = 1) -> None:
    async def enough() -> bool:
        return len(await mesh.job_events(subject, job_id)) >= count

    await wait_until(enough, what=f"{count} {subject} for {job_id}")


async def _outbox_drained(mesh: Mesh) -> None:
    async def drained() -> bool:
        async with mesh.service.store.sessions() as session:
            query = select(func.count()).where(outbox.c.published_at.is_(None))
            return int((await session.execute(query)).scalar_one()) == 0

    await wait_until(drained, what="outbox relayed")


async def _status(mesh: Mesh, job_id: str, status: str) -> None:
    async def reached() -> bool:
        return (await mesh.get(job_id)).status == status

    await wait_until(reached, what=f"{job_id} {status}")


async def test_create_publishes_one_event_and_a_retry_publishes_none(mesh: Mesh) -> None:
    request = mesh.job_request(idempotency_key="retry-me")
    first = await mesh.stub.CreateJob(request, metadata=mesh.auth(), timeout=10)
    await _published(mesh, subjects.job_created_subject("export", "free"), first.job_id)
    second = await mesh.stub.CreateJob(request, metadata=mesh.auth(), timeout=10)
    assert second.job_id == first.job_id
    await _outbox_drained(mesh)
    events = await mesh.job_events(subjects.job_created_subject("export", "free"), first.job_id)
    assert len(events) == 1
    created = events[0]
    assert isinstance(created, events_pb2.JobCreated)
    assert created.owner_id == "usr_alice"
    assert created.model_version == catalogue.DEFAULT
    assert created.content_image_id == request.content_url.rsplit("/", 1)[-1]


async def test_execution_events_drive_the_job_to_success(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    started = Timestamp()
    started.GetCurrentTime()
    await mesh.execution(
        subjects.EXECUTION_PROGRESS,
        events_pb2.ExecutionProgress(
            event_id=new_id("evt"),
            job_id=job_id,
            fraction=0.5,
            stage="stylizing",
            started_at=started,
        ),
    )
    await _status(mesh, job_id, "running")
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"), job_id=job_id, result_image_id="img_result", compute_ms=40
        ),
    )
    await _status(mesh, job_id, "succeeded")
    job = await mesh.get(job_id)
    assert job.result_url.endswith("img_result?expires=3600&sig=test")
    await _published(mesh, subjects.JOBS_SUCCEEDED, job_id)
    (done,) = await mesh.job_events(subjects.JOBS_SUCCEEDED, job_id)
    assert isinstance(done, events_pb2.JobSucceeded)
    assert (done.result_image_id, done.latency_ms) == ("img_result", job.latency_ms)


async def test_failure_is_published(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    await mesh.execution(
        subjects.EXECUTION_FAILED,
        events_pb2.ExecutionFailed(
            event_id=new_id("evt"), job_id=job_id, error_code="INTERNAL", error_message="boom"
        ),
    )
    await _status(mesh, job_id, "failed")
    await _published(mesh, subjects.JOBS_FAILED, job_id)
    (failed,) = await mesh.job_events(subjects.JOBS_FAILED, job_id)
    assert isinstance(failed, events_pb2.JobFailed)
    assert (failed.error_code, failed.error_message) == ("INTERNAL", "boom")


async def test_a_redelivered_event_is_applied_once(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    event_id = new_id("evt")
    payload = events_pb2.ExecutionSucceeded(
        event_id=event_id, job_id=job_id, result_image_id="img_once"
    ).SerializeToString()
    # Without a Nats-Msg-Id JetStream keeps both copies: the consumer must deduplicate.
    for _ in range(2):
        await mesh.js.publish(subjects.EXECUTION_SUCCEEDED, payload)
    await _status(mesh, job_id, "succeeded")
    await _published(mesh, subjects.JOBS_SUCCEEDED, job_id)

    async def both_handled() -> bool:
        info = await mesh.js.consumer_info(subjects.EXECUTION_STREAM.name, "jobs")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await wait_until(both_handled, what="both copies acked")
    await _outbox_drained(mesh)
    assert len(await mesh.job_events(subjects.JOBS_SUCCEEDED, job_id)) == 1
    async with mesh.service.store.sessions() as session:
        query = select(func.count()).where(processed_events.c.event_id == event_id)
        assert (await session.execute(query)).scalar_one() == 1


async def test_cancel_publishes_job_canceled(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    assert (await mesh.cancel(job_id)).status == "canceled"
    await _published(mesh, subjects.JOBS_CANCELED, job_id)
    # A worker that finishes anyway changes nothing.
    late_id = new_id("evt")
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(event_id=late_id, job_id=job_id, result_image_id="x"),
    )

    async def applied() -> bool:
        """The consumer recorded the event in the transaction that would change the job."""
        async with mesh.service.store.sessions() as session:
            query = select(func.count()).where(processed_events.c.event_id == late_id)
            return int((await session.execute(query)).scalar_one()) == 1

    await wait_until(applied, what="the late success handled")
    job = await mesh.get(job_id)
    assert (job.status, job.result_url) == ("canceled", "")


async def test_watch_streams_pending_running_succeeded(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    stream = mesh.stub.WatchJob(
        jobs_pb2.WatchJobRequest(job_id=job_id), metadata=mesh.auth(), timeout=15
    )
    first = await stream.read()
    assert first.job.status == "pending"
    await mesh.execution(
        subjects.EXECUTION_PROGRESS,
        events_pb2.ExecutionProgress(event_id=new_id("evt"), job_id=job_id, fraction=0.3),
    )
    running = await stream.read()
    assert (running.job.status, running.job.progress) == ("running", pytest.approx(0.3))
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"), job_id=job_id, result_image_id="img_w"
        ),
    )
    rest = []
    while (response := await stream.read()) is not grpc.aio.EOF:
        rest.append(response)
    assert rest[-1].job.status == "succeeded"
    assert rest[-1].job.result_url


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], str]]]]:
    """A local HTTP server that answers 500 to the first POST and 200 afterwards."""
    received: list[tuple[dict[str, str], str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.text()))
        return web.Response(status=500 if len(received) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await runner.cleanup()


async def test_webhook_is_signed_and_retried_after_a_500(
    mesh: Mesh, receiver: tuple[str, list[tuple[dict[str, str], str]]]
) -> None:
    url, received = receiver
    await mesh.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(url=url, secret=SECRET, events=["job.succeeded"]),
        metadata=mesh.auth(),
        timeout=10,
    )
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(
            event_id=new_id("evt"), job_id=job_id, result_image_id="img_h"
        ),
    )

    async def delivered() -> bool:
        deliveries = await mesh.service.store.deliveries_for_job(job_id)
        return bool(deliveries) and deliveries[0].status == "delivered"

    await wait_until(delivered, what="webhook delivered")
    assert len(received) == 2
    (delivery,) = await mesh.service.store.deliveries_for_job(job_id)
    assert (delivery.attempts, delivery.last_status_code) == (2, 200)
    for headers, body in received:
        assert headers["X-Gouache-Event"] == "job.succeeded"
        assert headers["X-Gouache-Delivery"] == delivery.delivery_id
        assert headers["Content-Type"] == "application/json"
        stamp = int(headers["X-Gouache-Timestamp"])
        assert verify_signature(SECRET, stamp, body, headers["X-Gouache-Signature"])
        data = json.loads(body)
        assert data["id"] == delivery.delivery_id
        assert data["event"] == "job.succeeded"
        assert data["job"]["job_id"] == job_id
        assert data["job"]["status"] == "succeeded"
        assert data["job"]["result_image_id"] == "img_h"
        assert data["job"]["model_version"] == catalogue.DEFAULT
