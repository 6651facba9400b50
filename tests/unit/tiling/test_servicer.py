"""TilingService on an in-process server: tile plans, worker status, bad input, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.server import RunningService, ServiceSpec, start_service
from gouache.runtime.settings import ServiceSettings
from services.tiling.domain import WorkerStatus
from services.tiling.server import POLICY, SERVICE_NAME
from services.tiling.servicer import TilingServicer
from tests.helpers.tokens import TestSigner

SIGNER = TestSigner()


@pytest.fixture(scope="module")
async def status_and_stub() -> AsyncIterator[
    tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub]
]:
    status = WorkerStatus(
        running_job_ids=["job_a"], jobs_succeeded=3, jobs_failed=1, redeliveries=2
    )
    spec = ServiceSpec(
        name="tiling",
        service_names=[SERVICE_NAME],
        register=lambda server: tiling_pb2_grpc.add_TilingServiceServicer_to_server(
            TilingServicer(status, default_tile_size=512), server
        ),
        policy=POLICY,
    )
    running: RunningService = await start_service(
        ServiceSettings(), spec, TokenVerifier(SIGNER.fetch)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield status, tiling_pb2_grpc.TilingServiceStub(channel)
    await running.stop(0)


def _auth(token: str | None = None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token or SIGNER.token(scopes=())}"),)


async def test_plan_tiles_uses_the_default_tile_size(
    status_and_stub: tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub],
) -> None:
    _, stub = status_and_stub
    reply = await stub.PlanTiles(
        tiling_pb2.PlanTilesRequest(width=1000, height=400, overlap=32), metadata=_auth()
    )
    assert [(t.x, t.y, t.width, t.height) for t in reply.tiles] == [
        (0, 0, 512, 400),
        (244, 0, 512, 400),
        (488, 0, 512, 400),
    ]


async def test_plan_tiles_small_image_is_one_tile(
    status_and_stub: tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub],
) -> None:
    _, stub = status_and_stub
    reply = await stub.PlanTiles(
        tiling_pb2.PlanTilesRequest(width=100, height=60, tile_size=128, overlap=64),
        metadata=_auth(),
    )
    assert [(t.x, t.y, t.width, t.height) for t in reply.tiles] == [(0, 0, 100, 60)]


@pytest.mark.parametrize(
    ("request_fields", "needle"),
    [
        ({"width": 0, "height": 10}, "image size must be positive"),
        ({"width": 10, "height": -1}, "image size must be positive"),
        ({"width": 9000, "height": 10}, "at most 8192"),
        ({"width": 100, "height": 100, "tile_size": 32}, "tile_size must be between 64 and 2048"),
        ({"width": 100, "height": 100, "tile_size": 4096}, "tile_size must be between"),
        ({"width": 100, "height": 100, "tile_size": 128, "overlap": 65}, "overlap must be"),
        ({"width": 100, "height": 100, "overlap": -1}, "overlap must be"),
    ],
)
async def test_plan_tiles_bad_input_is_invalid_argument(
    status_and_stub: tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub],
    request_fields: dict[str, int],
    needle: str,
) -> None:
    _, stub = status_and_stub
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PlanTiles(tiling_pb2.PlanTilesRequest(**request_fields), metadata=_auth())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (caught.value.details() or "")


async def test_worker_status_reports_counters(
    status_and_stub: tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub],
) -> None:
    _, stub = status_and_stub
    reply = await stub.GetWorkerStatus(tiling_pb2.GetWorkerStatusRequest(), metadata=_auth())
    assert list(reply.running_job_ids) == ["job_a"]
    assert (reply.jobs_succeeded, reply.jobs_failed, reply.redeliveries) == (3, 1, 2)


@pytest.mark.parametrize("method", ["PlanTiles", "GetWorkerStatus"])
async def test_calls_without_a_token_are_unauthenticated(
    status_and_stub: tuple[WorkerStatus, tiling_pb2_grpc.TilingServiceStub], method: str
) -> None:
    _, stub = status_and_stub
    request = (
        tiling_pb2.PlanTilesRequest(width=10, height=10)
        if method == "PlanTiles"
        else tiling_pb2.GetWorkerStatusRequest()
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
