"""Each job's inference calls go to its version's endpoint, else to the default inference."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from gouache.contracts.common.v1 import common_pb2
from gouache.contracts.events.v1 import events_pb2
from gouache.db import new_id
from gouache.imaging import codec
from gouache.runtime.ports import free_port
from services.tiling.bus import job_from_event
from services.tiling.clients import GrpcInference, StaticTokenSource, call_options
from services.tiling.domain import CanceledJobs, JobRunner, Outcome, RetryLater
from services.tiling.server import model_tile_size
from tests.helpers.inference import FakeInferenceServer
from tests.unit.tiling.fakes import FakeEvents, FakeStorage

FAST = "gatys.lite0-fast"
CANARY = "gatys.lite0-v2"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeInferenceServer, FakeInferenceServer]]:
    """The default inference, and a canary's own server that also loads FAST, differently."""
    default = await FakeInferenceServer.start({FAST: 128})
    canary = await FakeInferenceServer.start({FAST: 64, CANARY: 96})
    try:
        yield default, canary
    finally:
        await canary.stop()
        await default.stop()


def _content() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, size=(100, 200, 3), dtype=np.uint8)


def _event(version: str, endpoint: str = "") -> events_pb2.JobCreated:
    job_id = new_id("job")
    return events_pb2.JobCreated(
        event_id=f"evt-{job_id}",
        job_id=job_id,
        owner_id="usr_owner",
        content_image_id="img_content",
        style_image_ids=["img_style"],
        model_version=version,
        params=common_pb2.StylizeParams(overlap=16),
        inference_endpoint=endpoint,
    )


def _runner(inference: GrpcInference, storage: FakeStorage, events: FakeEvents) -> JobRunner:
    return JobRunner(
        storage,
        inference,
        events,
        canceled=CanceledJobs(10),
        tile_size_for=model_tile_size(inference, 512),
        trained_styles_only=inference.trained_styles_only,
        max_deliver=3,
    )


async def test_jobs_are_served_by_their_versions_endpoint(
    servers: tuple[FakeInferenceServer, FakeInferenceServer],
) -> None:
    default, canary = servers
    storage, events = FakeStorage(), FakeEvents()
    content = _content()
    storage.put("img_content", content)
    storage.put("img_style", np.full((64, 64, 3), 90, dtype=np.uint8))
    inference = GrpcInference(
        default.address, call_options(StaticTokenSource("svc-token"), 5.0), 10.0
    )
    runner = _runner(inference, storage, events)
    try:
        plain = _event(FAST)
        assert await runner.run(job_from_event(plain)) is Outcome.SUCCEEDED
        assert {call.model_version for call in default.servicer.calls} == {FAST}
        assert canary.servicer.calls == []
        # 200x100 in tiles of the default's 128 px: 2 tiles.
        assert events.of_kind("succeeded")[-1]["tiles"] == 2
        result = codec.validate_and_decode(storage.uploads[-1]["data"]).pixels
        np.testing.assert_array_equal(result, 255 - content)

        default_calls = len(default.servicer.calls)
        same_name = _event(FAST, canary.address)
        assert await runner.run(job_from_event(same_name)) is Outcome.SUCCEEDED
        assert len(default.servicer.calls) == default_calls
        assert {call.model_version for call in canary.servicer.calls} == {FAST}
        # The canary server's own answer for the same name (64 px), not the default's.
        assert events.of_kind("succeeded")[-1]["tiles"] == 8

        new_version = _event(CANARY, canary.address)
        assert await runner.run(job_from_event(new_version)) is Outcome.SUCCEEDED
        assert len(default.servicer.calls) == default_calls
        assert canary.servicer.calls[-1].model_version == CANARY
        assert events.of_kind("succeeded")[-1]["tiles"] == 6  # 96 px tiles

        again = _event(FAST)
        assert await runner.run(job_from_event(again)) is Outcome.SUCCEEDED
        assert len(default.servicer.calls) > default_calls

        # One channel per endpoint, reused; what each server loads is listed once.
        assert inference.endpoints == [default.address, canary.address]
        assert (default.servicer.listings, canary.servicer.listings) == (1, 1)
        calls = default.servicer.calls + canary.servicer.calls
        assert {call.authorization for call in calls} == {"Bearer svc-token"}
    finally:
        await inference.close()
    assert inference.endpoints == []


async def test_an_unreachable_endpoint_is_retried_not_failed(
    servers: tuple[FakeInferenceServer, FakeInferenceServer],
) -> None:
    default, _ = servers
    storage, events = FakeStorage(), FakeEvents()
    storage.put("img_content", _content())
    storage.put("img_style", np.full((64, 64, 3), 90, dtype=np.uint8))
    inference = GrpcInference(default.address, call_options(StaticTokenSource("t"), 5.0), 10.0)
    runner = _runner(inference, storage, events)
    gone = f"127.0.0.1:{free_port()}"
    try:
        with pytest.raises(RetryLater) as caught:
            await runner.run(job_from_event(_event(FAST, gone)), delivery=1)
        assert caught.value.code == "UNAVAILABLE"
        assert default.servicer.calls == []
        assert events.of_kind("failed") == []
    finally:
        await inference.close()
