"""Priority classes on a real JetStream: a flood of free exports never hides an enterprise preview.

The JobConsumer's durable consumers (one per class) feed a stand-in runner that records the
order jobs start in; its first job holds the only slot until the queue has built up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from gouache import priority
from gouache.bus import subjects
from gouache.bus.jetstream import connect, ensure_streams, publish
from gouache.contracts.events.v1 import events_pb2
from services.tiling.bus import DURABLE_NAME, JobConsumer
from services.tiling.domain import Job, Outcome
from tests.fixtures.nats import NatsServer, running_nats_server

# Bounded: a consumer that cannot start or stop fails the test instead of hanging the run.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class RecordingRunner:
    """Records the order jobs start in; the first one waits for `release`."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = asyncio.Event()

    async def run(self, job: Job, *, delivery: int = 1) -> Outcome:
        self.started.append(job.job_id)
        if len(self.started) == 1:
            await self.release.wait()
        return Outcome.SUCCEEDED


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with running_nats_server(tmp_path) as server:
        yield server


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    connection, context = await connect(nats_server.url, name="priority-tests")
    await ensure_streams(context)
    try:
        yield context
    finally:
        await connection.close()


async def _publish(js: JetStreamContext, job_id: str, subject: str) -> None:
    event = events_pb2.JobCreated(
        event_id=f"evt-{job_id}",
        job_id=job_id,
        owner_id="usr_alice",
        content_image_id="img_c",
        style_image_ids=["img_s"],
        model_version="adain.lite0-v1.1",
    )
    await publish(js, subject, event, event_id=event.event_id)


async def _until(condition: Any, what: str, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_an_enterprise_preview_overtakes_a_flood_of_free_exports(
    js: JetStreamContext,
) -> None:
    runner = RecordingRunner()
    consumer = JobConsumer(
        js,
        runner,  # type: ignore[arg-type]
        ack_wait_s=10,
        max_deliver=3,
        concurrency=1,
        retry_initial_s=0.5,
        retry_max_s=1,
        aging_s=3600,
    )
    await consumer.start()
    try:
        free = subjects.job_created_subject("export", "free")
        await _publish(js, "job_first", free)
        await _until(lambda: runner.started == ["job_first"], "the first job to start")
        for index in range(20):
            await _publish(js, f"job_free_{index:02d}", free)
        await _publish(js, "job_legacy", subjects.JOBS_CREATED)
        await _publish(js, "job_pro_export", subjects.job_created_subject("export", "pro"))
        await _publish(js, "job_preview", subjects.job_created_subject("preview", "enterprise"))
        # The other classes' consumers have each fetched their job, which waits for the
        # slot; the free class's has its one job in flight (the first, running).
        await _until(lambda: consumer.gate.waiting == 3, "one job per other class to wait")
        runner.release.set()
        await _until(lambda: len(runner.started) == 24, "every job to run")
    finally:
        await consumer.stop()

    order = runner.started
    assert order[:3] == ["job_first", "job_preview", "job_pro_export"]
    # Then the free exports in the order they were published, and the earlier release's
    # job (same class) once it is the longest waiting.
    free_order = [job for job in order if job.startswith("job_free_")]
    assert free_order == sorted(free_order)
    assert set(order[3:]) == {f"job_free_{index:02d}" for index in range(20)} | {"job_legacy"}


async def test_every_class_has_its_durable_consumer(js: JetStreamContext) -> None:
    consumer = JobConsumer(
        js,
        RecordingRunner(),  # type: ignore[arg-type]
        ack_wait_s=10,
        max_deliver=3,
        concurrency=2,
        retry_initial_s=0.5,
        retry_max_s=1,
    )
    await asyncio.wait_for(consumer.start(), timeout=60)
    try:
        names = set()
        infos = await asyncio.wait_for(js.consumers_info(subjects.JOBS_STREAM.name), timeout=30)
        for info in infos:
            names.add(
                (info.name, info.config.filter_subject or tuple(info.config.filter_subjects or ()))
            )
    finally:
        await asyncio.wait_for(consumer.stop(), timeout=60)
    expected = {
        (f"{DURABLE_NAME}-{lane}-{tier}", subjects.job_created_subject(lane, tier))
        for lane, tier in priority.CLASSES
    }
    expected.add((DURABLE_NAME, subjects.JOBS_CREATED))
    simplified = {
        (name, subject if isinstance(subject, str) else subject[0]) for name, subject in names
    }
    assert simplified == expected
