"""A batch over real JetStream and a real database: items' events end it, one webhook POST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gouache.bus import subjects
from gouache.contracts.events.v1 import events_pb2
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.db import new_id
from services.jobs.domain.webhooks import verify_signature
from tests.integration.jobs.conftest import Mesh, wait_until

SECRET = "whsec_0123456789abcdef"


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], str]]]]:
    """A local HTTP server that records every POST and answers 200."""
    received: list[tuple[dict[str, str], str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.text()))
        return web.Response(status=200)

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


async def _batch_finished_events(mesh: Mesh, batch_id: str) -> list[events_pb2.BatchFinished]:
    """The BatchFinished events about batch_id on the jobs stream (after the relay ran)."""

    async def read() -> list[events_pb2.BatchFinished]:
        info = await mesh.js.stream_info(subjects.JOBS_STREAM.name)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await mesh.js.get_msg(subjects.JOBS_STREAM.name, seq)
            if raw.subject != subjects.JOBS_BATCH_FINISHED:
                continue
            event = events_pb2.BatchFinished.FromString(raw.data or b"")
            if event.batch_id == batch_id:
                found.append(event)
        return found

    async def published() -> bool:
        return bool(await read())

    await wait_until(published, what=f"BatchFinished of {batch_id} published")
    return await read()


async def test_execution_events_end_the_batch_and_one_webhook_is_posted(
    mesh: Mesh, receiver: tuple[str, list[tuple[dict[str, str], str]]]
) -> None:
    url, received = receiver
    await mesh.stub.CreateWebhook(
        jobs_pb2.CreateWebhookRequest(url=url, secret=SECRET, events=["batch.finished"]),
        metadata=mesh.auth(),
        timeout=10,
    )
    request = jobs_pb2.CreateBatchRequest(
        content_urls=[mesh.images.add("usr_alice") for _ in range(3)],
        style_urls=[mesh.images.add(None)],
    )
    batch = await mesh.stub.CreateBatch(request, metadata=mesh.auth(), timeout=10)
    assert batch.status == "running"
    job_ids = [item.job_id for item in batch.items]
    for job_id in job_ids:
        # Each item is a normal job: its JobCreated goes to the export lane's subject.
        async def created(job_id: str = job_id) -> bool:
            info = await mesh.js.stream_info(subjects.JOBS_STREAM.name)
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                raw = await mesh.js.get_msg(subjects.JOBS_STREAM.name, seq)
                if (raw.subject or "").startswith(
                    "gouache.jobs.created.export."
                ) and job_id.encode() in (raw.data or b""):
                    return True
            return False

        await wait_until(created, what=f"JobCreated of {job_id} on the export lane")
    outcomes: list[tuple[str, events_pb2.ExecutionSucceeded | events_pb2.ExecutionFailed]] = [
        (
            subjects.EXECUTION_SUCCEEDED,
            events_pb2.ExecutionSucceeded(
                event_id=new_id("evt"), job_id=job_ids[0], result_image_id="img_a"
            ),
        ),
        (
            subjects.EXECUTION_FAILED,
            events_pb2.ExecutionFailed(
                event_id=new_id("evt"), job_id=job_ids[1], error_code="INTERNAL", error_message="x"
            ),
        ),
        (
            subjects.EXECUTION_SUCCEEDED,
            events_pb2.ExecutionSucceeded(
                event_id=new_id("evt"), job_id=job_ids[2], result_image_id="img_c"
            ),
        ),
    ]
    for subject, message in outcomes:
        await mesh.execution(subject, message)

    async def finished() -> bool:
        got = await mesh.stub.GetBatch(
            jobs_pb2.GetBatchRequest(batch_id=batch.batch_id), metadata=mesh.auth(), timeout=10
        )
        return bool(got.status != "running")

    await wait_until(finished, what="batch finished")

    async def posted() -> bool:
        return len(received) >= 1

    await wait_until(posted, what="batch.finished POSTed")
    done = await mesh.stub.GetBatch(
        jobs_pb2.GetBatchRequest(batch_id=batch.batch_id), metadata=mesh.auth(), timeout=10
    )
    assert done.status == "partially_succeeded"
    assert (done.counts.succeeded, done.counts.failed) == (2, 1)

    async def marked() -> bool:
        # The deliverer marks the row once the receiver's answer is back, just after the
        # POST the receiver already saw.
        (delivery,) = await mesh.service.store.deliveries_for_job(batch.batch_id)
        return bool(delivery.status == "delivered")

    await wait_until(marked, what="the delivery marked delivered")
    assert len(received) == 1
    headers, body = received[0]
    assert headers["X-Gouache-Event"] == "batch.finished"
    assert verify_signature(
        SECRET, int(headers["X-Gouache-Timestamp"]), body, headers["X-Gouache-Signature"]
    )
    data = json.loads(body)
    assert data["batch"]["batch_id"] == batch.batch_id
    finished_events = await _batch_finished_events(mesh, batch.batch_id)
    assert len(finished_events) == 1
    assert finished_events[0].status == "partially_succeeded"
    assert (finished_events[0].succeeded, finished_events[0].failed) == (2, 1)
    assert data["batch"]["status"] == "partially_succeeded"
    assert data["batch"]["counts"]["succeeded"] == 2
