"""A long poll on one jobs replica answers at once when another replica ends the job: the
final-state events on NATS wake it, not its periodic re-read (set to 30 s here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.db import new_id
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import start_service
from services.jobs.domain.jobs import ExecutionSucceeded
from services.jobs.server import build
from services.jobs.settings import JobsSettings
from tests.fixtures.nats import NatsServer
from tests.integration.jobs.conftest import SECRETS_KEY, Mesh

pytestmark = pytest.mark.slow


@pytest.fixture
async def other_replica(
    mesh: Mesh, db_url: str, nats_server: NatsServer
) -> AsyncIterator[jobs_pb2_grpc.JobsServiceStub]:
    """A second jobs replica on the same database and NATS that re-reads only every 30 s."""
    settings = JobsSettings(
        port=0,
        database_url=db_url,
        nats_url=nats_server.url,
        watch_poll_interval_s=30.0,
        secrets_key=SECRETS_KEY,
    )
    service = await build(
        settings,
        verifier=TokenVerifier(mesh.signer.fetch),
        images=mesh.images,
        downloads=mesh.images,
    )
    running = await start_service(settings, service.spec, service.verifier)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield jobs_pb2_grpc.JobsServiceStub(channel)
    finally:
        await channel.close()
        await running.stop(0)


async def test_a_wait_on_one_replica_answers_when_another_ends_the_job(
    mesh: Mesh, other_replica: jobs_pb2_grpc.JobsServiceStub
) -> None:
    created = await mesh.stub.CreateJob(mesh.job_request(), metadata=mesh.auth(), timeout=10)
    request = jobs_pb2.WaitJobRequest(job_id=created.job_id)
    request.timeout.FromSeconds(20)
    waiting = asyncio.ensure_future(
        other_replica.WaitJob(request, metadata=mesh.auth(), timeout=30)
    )
    await asyncio.sleep(0.5)  # the wait has read the job (pending) and sleeps
    assert not waiting.done()
    # The first replica applies the outcome; its outbox publishes JobSucceeded.
    ended = time.monotonic()
    await mesh.service.app.apply_execution(
        new_id("evt"), created.job_id, ExecutionSucceeded(result_image_id="img_result")
    )
    job = await waiting
    answered_after = time.monotonic() - ended
    assert job.status == "succeeded"
    assert answered_after < 5, f"answered after {answered_after:.1f} s: no wake-up"
