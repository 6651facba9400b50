"""kill -9 of the tiling worker mid-job: the job still completes exactly once."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from gouache.cli.mesh import Mesh
from gouache.client import GouacheClient
from gouache.contracts.events.v1 import events_pb2
from tests.e2e.images import small

pytestmark = pytest.mark.slow


async def _count(
    mesh: Mesh,
    subject: str,
    job_id: str,
    message: type[events_pb2.JobSucceeded] | type[events_pb2.ExecutionSucceeded],
) -> int:
    connection = await nats.connect(f"nats://127.0.0.1:{mesh.config.ports.nats}")
    try:
        js = connection.jetstream()
        subscription = await js.pull_subscribe(subject, durable=None)
        count = 0
        while True:
            try:
                batch = await subscription.fetch(100, timeout=1)
            except TimeoutError:
                break
            for msg in batch:
                if message.FromString(msg.data).job_id == job_id:
                    count += 1
                await msg.ack()
        return count
    finally:
        await connection.close()


async def test_kill_tiling_mid_job_completes_once(mesh: Mesh, admin: GouacheClient) -> None:
    content_url = admin.upload(small("astronaut", 192), filename="big.png")
    style_url = admin.upload(small("hubble_deep_field", 64), filename="s.png", kind="style")
    job = admin.create_job(
        content_url,
        [style_url],
        model_version="gatys-fast",
        params={"tile_size": 64, "overlap": 16, "seed": 1},
    )
    deadline = time.monotonic() + 120
    while admin.get_job(job["job_id"])["status"] != "running":
        assert time.monotonic() < deadline, "job never started"
        await asyncio.sleep(0.1)

    mesh.kill("tiling")
    assert admin.get_job(job["job_id"])["status"] == "running"
    mesh.restart("tiling")

    result = admin.wait(job["job_id"], timeout_s=300)
    assert result.status == "succeeded", result.raw
    assert (
        await _count(
            mesh, "gouache.execution.succeeded", job["job_id"], events_pb2.ExecutionSucceeded
        )
        == 1
    )
    assert await _count(mesh, "gouache.jobs.succeeded", job["job_id"], events_pb2.JobSucceeded) == 1
