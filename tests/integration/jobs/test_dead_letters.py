"""Poison messages fail their job: dead letters from any consumer reach the jobs service."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from nats.js.api import DeliverPolicy

from gouache.bus import subjects
from gouache.bus.consumer import DurableConsumer, Event
from gouache.bus.deadletter import DeadLetter, dead_letter_subject
from gouache.contracts.events.v1 import events_pb2
from gouache.db import new_id
from tests.integration.jobs.conftest import Mesh, wait_until

MAX_DELIVER = 3


async def _final(mesh: Mesh, job_id: str) -> str:
    async def final() -> bool:
        return (await mesh.get(job_id)).status in {"succeeded", "failed", "canceled"}

    await wait_until(final, within=20, what=f"{job_id} final")
    return (await mesh.get(job_id)).status


@pytest.fixture
async def broken_worker(mesh: Mesh) -> AsyncIterator[list[str]]:
    """A worker on gouache.jobs.created whose handler always fails (the injected fault)."""
    durable = f"poisoned-{new_id('w')}"
    seen: list[str] = []

    async def always_fail(event: Event) -> None:
        seen.append(str(getattr(event.message, "job_id", "")))
        raise RuntimeError("inference returned NaN tiles")

    consumer = DurableConsumer(
        mesh.js,
        stream=subjects.JOBS_STREAM.name,
        durable=durable,
        filter_subjects=[subjects.job_created_subject("export", "free")],
        handler=always_fail,
        deliver_policy=DeliverPolicy.NEW,
        max_deliver=MAX_DELIVER,
        retry_initial=0.05,
        retry_max=0.1,
        fetch_wait=0.5,
    )
    await consumer.start()
    try:
        yield seen
    finally:
        await consumer.stop()
        await mesh.js.delete_consumer(subjects.JOBS_STREAM.name, durable)


async def test_a_job_whose_created_event_keeps_failing_ends_failed_with_the_reason(
    mesh: Mesh, broken_worker: list[str]
) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id

    assert await _final(mesh, job_id) == "failed"
    job = await mesh.get(job_id)
    assert broken_worker.count(job_id) == MAX_DELIVER
    assert job.error_code == "INTERNAL"
    assert re.fullmatch(
        r"processing of gouache\.jobs\.created\.export\.free \(stream GOUACHE_JOBS, sequence \d+\) by "
        r"consumer poisoned-w\w+ failed 3 times: RuntimeError: inference returned NaN tiles; "
        r"the message is in dead-letter subject "
        r"gouache\.dlq\.gouache\.jobs\.created\.export\.free "
        r"\(stream GOUACHE_DLQ, sequence \d+\)",
        job.error,
    ), job.error
    (failed,) = await mesh.published(subjects.JOBS_FAILED, job_id)
    assert isinstance(failed, events_pb2.JobFailed)
    assert failed.error_message == job.error


async def test_a_malformed_execution_event_fails_its_job_at_once(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    # A success that names no result can never apply: dead-lettered on its 1st delivery.
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(event_id=new_id("evt"), job_id=job_id),
    )

    assert await _final(mesh, job_id) == "failed"
    job = await mesh.get(job_id)
    assert job.error_code == "INTERNAL"
    assert f"by consumer jobs failed once: success event for job {job_id} names no " in (job.error)
    assert dead_letter_subject(subjects.EXECUTION_SUCCEEDED) in job.error


async def test_a_dead_letter_leaves_a_finished_job_as_it_is(mesh: Mesh) -> None:
    job_id = (
        await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    ).job_id
    await mesh.execution(
        subjects.EXECUTION_SUCCEEDED,
        events_pb2.ExecutionSucceeded(event_id=new_id("evt"), job_id=job_id, result_image_id="i"),
    )
    assert await _final(mesh, job_id) == "succeeded"
    # Another consumer (feedback, say) gave up on the job's JobSucceeded afterwards.
    letter = DeadLetter(
        subject=subjects.JOBS_SUCCEEDED,
        stream=subjects.JOBS_STREAM.name,
        stream_sequence=1_000_000,
        consumer="feedback",
        deliveries=10,
        error="database is locked",
        job_id=job_id,
    )
    ack = await mesh.js.publish(
        dead_letter_subject(subjects.JOBS_SUCCEEDED),
        events_pb2.JobSucceeded(event_id=new_id("evt"), job_id=job_id).SerializeToString(),
        headers=letter.headers({}, datetime.now(UTC)),
    )

    async def dead_letter_applied() -> bool:
        info = await mesh.js.consumer_info(subjects.DLQ_STREAM.name, "jobs-dead-letters")
        return bool(info.ack_floor.stream_seq >= ack.seq and info.num_ack_pending == 0)

    await wait_until(dead_letter_applied, what="the dead letter applied")
    job = await mesh.get(job_id)
    assert (job.status, job.error) == ("succeeded", "")
