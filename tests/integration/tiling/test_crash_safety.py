"""The tiling worker against real NATS, storage and inference: kill -9 mid-job, cancel, fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy import func, select

from gouache.bus import subjects
from gouache.bus.jetstream import publish
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.db import new_id
from gouache.imaging import codec
from services.storage.store import images
from tests.integration.tiling.conftest import (
    FAST,
    OWNER,
    Mesh,
    WorkerProcess,
    for_job,
    picture,
    wait_for,
)

pytestmark = pytest.mark.slow


async def _publish_job(
    js: JetStreamContext, job_id: str, content_id: str, style_ids: list[str]
) -> int:
    """Publishes a JobCreated; returns its stream sequence."""
    event = events_pb2.JobCreated(
        event_id=f"evt-created-{job_id}",
        job_id=job_id,
        owner_id=OWNER,
        content_image_id=content_id,
        style_image_ids=style_ids,
        model_version=FAST,
        params=common_pb2.StylizeParams(seed=7, tile_size=128, overlap=16),
    )
    return (await publish(js, subjects.JOBS_CREATED, event, event_id=event.event_id)).seq


async def _result_images(mesh: Mesh) -> int:
    async with mesh.storage.library.store.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(images).where(images.c.kind == "result")
        )
    return int(count or 0)


def _acked(js: JetStreamContext, stream_seq: int) -> Callable[[], Awaitable[bool]]:
    async def acked() -> bool:
        info = await js.consumer_info(subjects.JOBS_STREAM.name, "tiling")
        return bool(info.ack_floor.stream_seq >= stream_seq and info.num_ack_pending == 0)

    return acked


def _consumer_settled(js: JetStreamContext) -> Callable[[], Awaitable[bool]]:
    async def settled() -> bool:
        info = await js.consumer_info(subjects.JOBS_STREAM.name, "tiling")
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

    return settled


async def test_kill_9_mid_job_yields_one_result_and_one_success(
    nats_js: tuple[NATS, JetStreamContext], mesh: Mesh, worker: WorkerProcess
) -> None:
    nc, js = nats_js
    content = picture(256, 192, seed=1)
    content_id = await mesh.upload(content, "content")
    style_id = await mesh.upload(picture(160, 160, seed=2)[:, ::-1].copy(), "style")
    job_id = new_id("job")

    progress: list[events_pb2.ExecutionProgress] = []

    async def on_progress(msg: Msg) -> None:
        event = events_pb2.ExecutionProgress()
        event.ParseFromString(msg.data)
        if event.job_id == job_id:
            progress.append(event)

    subscription = await nc.subscribe(subjects.EXECUTION_PROGRESS, cb=on_progress)
    try:
        created_seq = await _publish_job(js, job_id, content_id, [style_id])
        worker.start()

        async def mid_job() -> bool:
            return any(e.stage == "stylizing" and e.fraction < 0.5 for e in progress)

        # 6 tiles of 128 px, one per batch: the first tile's progress means the job is
        # well under way and far from finished.
        await wait_for(mid_job, within=90, what="the first stylized tile", worker=worker)
        worker.kill()
        killed_at = len(progress)
        assert await for_job(js, subjects.EXECUTION_SUCCEEDED, job_id) == []
        assert await _result_images(mesh) == 0

        worker.start()

        async def succeeded() -> bool:
            return bool(await for_job(js, subjects.EXECUTION_SUCCEEDED, job_id))

        await wait_for(succeeded, within=150, what="ExecutionSucceeded", worker=worker)
        await wait_for(_acked(js, created_seq), within=15, what="the job's ack", worker=worker)
        # Below the consumer's ack floor the message is settled for good: JetStream never
        # delivers it again, so the counts below cannot grow later.
    finally:
        await subscription.unsubscribe()

    successes = await for_job(js, subjects.EXECUTION_SUCCEEDED, job_id)
    assert len(successes) == 1
    success = successes[0]
    assert success.event_id == f"exec-succeeded-{job_id}"
    assert success.tiles == 6
    assert await _result_images(mesh) == 1
    assert await for_job(js, subjects.EXECUTION_FAILED, job_id) == []

    result = codec.validate_and_decode(await mesh.download(success.result_image_id))
    assert (result.width, result.height) == (256, 192)
    assert not np.array_equal(result.pixels, content)

    # The restarted worker did the job again from the start: a second "loading" stage.
    loading = [e for e in progress if e.stage == "loading"]
    assert len(loading) == 2
    assert progress[killed_at].stage == "loading"
    # ... on JetStream's second delivery of the same message (the delivery is in the id).
    assert loading[0].event_id == f"exec-progress-{job_id}-1-1"
    assert loading[1].event_id == f"exec-progress-{job_id}-2-1"
    assert not [e for e in progress if e.event_id.startswith(f"exec-progress-{job_id}-3-")]


async def test_canceled_job_is_skipped_and_a_missing_image_fails_the_job(
    nats_js: tuple[NATS, JetStreamContext], mesh: Mesh, worker: WorkerProcess
) -> None:
    _, js = nats_js
    style_id = await mesh.upload(picture(64, 64, seed=3), "style")
    content_id = await mesh.upload(picture(96, 64, seed=4), "content")
    canceled_job, missing_job = new_id("job"), new_id("job")
    cancel = events_pb2.JobCanceled(
        event_id=f"evt-canceled-{canceled_job}", job_id=canceled_job, owner_id=OWNER
    )
    # Canceled before the worker starts: it learns of it from the replayed window.
    await publish(js, subjects.JOBS_CANCELED, cancel, event_id=cancel.event_id)
    await _publish_job(js, canceled_job, content_id, [style_id])
    await _publish_job(js, missing_job, "img_01JZZZZZZZZZZZZZZZZZZZZZZZ", [style_id])
    worker.start()

    async def missing_failed() -> bool:
        return bool(await for_job(js, subjects.EXECUTION_FAILED, missing_job))

    await wait_for(missing_failed, within=60, what="ExecutionFailed", worker=worker)
    await wait_for(_consumer_settled(js), within=30, what="both jobs acked", worker=worker)

    failed = (await for_job(js, subjects.EXECUTION_FAILED, missing_job))[0]
    assert failed.error_code == "NOT_FOUND"
    assert "img_01JZZZZZZZZZZZZZZZZZZZZZZZ" in failed.error_message
    for subject in (
        subjects.EXECUTION_PROGRESS,
        subjects.EXECUTION_SUCCEEDED,
        subjects.EXECUTION_FAILED,
    ):
        assert await for_job(js, subject, canceled_job) == []
