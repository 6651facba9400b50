"""Canceling a running job reaches the computation in a real inference server.

Tiling's GrpcInference (its channel from `open_channel`, with the tracing interceptors)
calls an in-process inference server whose family computes until its cancellation fires.
Canceling the job must cancel the gRPC call, and the server must then stop the
computation: before the client cancelled the RPC itself, the tracing interceptor awaited
the call's status in its own task, so cancelling the caller left the RPC running on the
server until its deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from gouache.nst.base import Canceled, Cancellation, RGBImage, StylizeControls
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import start_service
from services.inference.server import build
from services.inference.settings import InferenceSettings
from services.tiling.clients import GrpcInference, StaticTokenSource, call_options
from services.tiling.domain import CanceledJobs, Job, JobRunner, Outcome
from tests.unit.inference.fakes import SIGNER
from tests.unit.tiling.fakes import FakeEvents, FakeStorage

VERSION = "spin.v1"
JOB_ID = "job_01JCANCELCANCELCANCELCANCE"
STOPPED_WITHIN_S = 3.0


class _Spinning:
    """Once armed, computes until its cancellation fires, checking it every 5 ms."""

    name = "spinning"

    def __init__(self) -> None:
        self.armed = False
        self.started = threading.Event()
        self.stopped = threading.Event()

    def stylize(
        self,
        content: RGBImage,
        styles: Sequence[RGBImage],
        weights: Sequence[float],
        controls: StylizeControls,
        *,
        style_keys: Sequence[str] | None = None,
        cancellation: Cancellation | None = None,
    ) -> RGBImage:
        if not self.armed:
            return content.copy()
        self.started.set()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if cancellation is not None:
                    cancellation.check()
                time.sleep(0.005)
        except Canceled:
            self.stopped.set()
            raise
        raise AssertionError("never canceled")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, _Spinning]]:
    family = _Spinning()
    settings = InferenceSettings(port=0, models=VERSION)
    spec, verifier = await build(
        settings, verifier=TokenVerifier(SIGNER.fetch), builder=lambda model, device: family
    )
    running = await start_service(settings, spec, verifier)
    family.armed = True
    try:
        yield f"127.0.0.1:{running.port}", family
    finally:
        family.armed = False
        await running.stop(0)


async def test_canceling_the_job_stops_the_computation_in_inference(
    server: tuple[str, _Spinning],
) -> None:
    address, family = server
    storage, events = FakeStorage(), FakeEvents()
    storage.put("img_content", np.full((48, 64, 3), 120, dtype=np.uint8))
    storage.put("img_style", np.full((32, 32, 3), 90, dtype=np.uint8))
    token = SIGNER.token("usr_tiling", role="service", scopes=("internal",))
    inference = GrpcInference(address, call_options(StaticTokenSource(token), 10.0), 300.0)
    canceled = CanceledJobs(10)

    async def tile_size(_version: str, _endpoint: str) -> int:
        return 128

    runner = JobRunner(
        storage, inference, events, canceled=canceled, tile_size_for=tile_size, max_deliver=3
    )
    job = Job(
        job_id=JOB_ID,
        owner_id="usr_owner",
        content_image_id="img_content",
        style_image_ids=("img_style",),
        model_version=VERSION,
    )
    try:
        run = asyncio.create_task(runner.run(job))
        assert await asyncio.to_thread(family.started.wait, 30)

        canceled.add(JOB_ID)
        canceled_at = time.monotonic()

        assert await asyncio.wait_for(run, timeout=STOPPED_WITHIN_S) is Outcome.CANCELED
        assert await asyncio.to_thread(family.stopped.wait, STOPPED_WITHIN_S)
        assert time.monotonic() - canceled_at < STOPPED_WITHIN_S
        assert storage.uploads == []
    finally:
        await inference.close()
