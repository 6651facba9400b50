"""The worker process sends a job to its version's own inference endpoint, else to its default."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from gouache.bus import subjects
from gouache.bus.jetstream import publish
from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.db import new_id
from gouache.imaging import codec
from tests.helpers.inference import FakeInferenceServer
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


@pytest.fixture
async def canary_inference() -> AsyncIterator[FakeInferenceServer]:
    """A second inference server (a fake that inverts tiles) for one version."""
    server = await FakeInferenceServer.start({FAST: 128})
    try:
        yield server
    finally:
        await server.stop()


async def _publish(
    js: JetStreamContext, content_id: str, style_id: str, *, endpoint: str = ""
) -> str:
    job_id = new_id("job")
    event = events_pb2.JobCreated(
        event_id=f"evt-created-{job_id}",
        job_id=job_id,
        owner_id=OWNER,
        content_image_id=content_id,
        style_image_ids=[style_id],
        model_version=FAST,
        params=common_pb2.StylizeParams(seed=7, tile_size=128, overlap=16),
        inference_endpoint=endpoint,
    )
    await publish(js, subjects.JOBS_CREATED, event, event_id=event.event_id)
    return job_id


async def test_a_job_runs_on_its_versions_endpoint(
    nats_js: tuple[NATS, JetStreamContext],
    mesh: Mesh,
    worker: WorkerProcess,
    canary_inference: FakeInferenceServer,
) -> None:
    _, js = nats_js
    content = picture(96, 64, seed=11)
    content_id = await mesh.upload(content, "content")
    style_id = await mesh.upload(picture(64, 64, seed=12), "style")
    on_canary = await _publish(js, content_id, style_id, endpoint=canary_inference.address)
    on_default = await _publish(js, content_id, style_id)
    worker.start()

    async def both_succeeded() -> bool:
        done = [await for_job(js, subjects.EXECUTION_SUCCEEDED, j) for j in (on_canary, on_default)]
        return all(done)

    await wait_for(both_succeeded, within=120, what="both jobs to succeed", worker=worker)

    # The canary's server got exactly the canary job's one tile, with the worker's token.
    calls = canary_inference.servicer.calls
    assert [(call.model_version, call.tiles) for call in calls] == [(FAST, 1)]
    assert calls[0].authorization.startswith("Bearer ")

    results = {}
    for job_id in (on_canary, on_default):
        (success,) = await for_job(js, subjects.EXECUTION_SUCCEEDED, job_id)
        results[job_id] = codec.validate_and_decode(await mesh.download(success.result_image_id))
    # The fake inverts; the default inference (real gatys) does not.
    np.testing.assert_array_equal(results[on_canary].pixels, 255 - content)
    assert not np.array_equal(results[on_default].pixels, 255 - content)
    assert (results[on_default].width, results[on_default].height) == (96, 64)
