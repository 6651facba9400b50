"""A rate-limited service on a real in-process server: RESOURCE_EXHAUSTED with RetryInfo,
ErrorInfo RATE_LIMITED and a retry-after header; public methods and services untouched."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from gouache.ratelimit.calls import CallLimiter
from gouache.ratelimit.limiter import RateLimiter
from gouache.ratelimit.plans import PlanLimit
from gouache.runtime.auth import AUTHENTICATED, TokenVerifier
from gouache.runtime.server import RunningService, ServiceSpec, start_service
from gouache.runtime.settings import ServiceSettings
from tests.helpers.tokens import TestSigner
from tests.unit.ratelimit.memory_store import MemoryStore

SERVICE = "gouache.tiling.v1.TilingService"


class _Tiling(tiling_pb2_grpc.TilingServiceServicer):
    async def PlanTiles(
        self, request: tiling_pb2.PlanTilesRequest, context: object
    ) -> tiling_pb2.PlanTilesResponse:
        return tiling_pb2.PlanTilesResponse(tiles=[tiling_pb2.Tile(width=request.width)])


@pytest.fixture
async def service() -> AsyncIterator[tuple[RunningService, TestSigner]]:
    signer = TestSigner()
    limiter = CallLimiter(
        "tiling", RateLimiter(MemoryStore()), {"free": PlanLimit(per_minute=6, burst=2)}
    )
    spec = ServiceSpec(
        name="tiling",
        service_names=[SERVICE],
        register=lambda server: tiling_pb2_grpc.add_TilingServiceServicer_to_server(
            _Tiling(), server
        ),
        policy={f"/{SERVICE}/PlanTiles": AUTHENTICATED},
        guard=limiter,
    )
    running = await start_service(ServiceSettings(), spec, TokenVerifier(signer.fetch))
    yield running, signer
    await running.stop(0)


async def _plan(channel: grpc.aio.Channel, token: str) -> tiling_pb2.PlanTilesResponse:
    stub = tiling_pb2_grpc.TilingServiceStub(channel)
    return await stub.PlanTiles(
        tiling_pb2.PlanTilesRequest(width=8),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=5,
    )


async def test_a_user_over_the_limit_gets_resource_exhausted_with_retry_info(
    service: tuple[RunningService, TestSigner],
) -> None:
    running, signer = service
    token = signer.token("usr_alice")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        for _ in range(2):
            await _plan(channel, token)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _plan(channel, token)
        error = refused.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() is not None
        assert error.details().startswith(
            "rate limit of 6 requests per minute for plan free exceeded; retry in "
        )
        trailers = dict(error.trailing_metadata() or ())
        retry_after = int(trailers["retry-after"])
        assert 1 <= retry_after <= 10
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        info = error_details_pb2.ErrorInfo()
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(info)
        assert status.details[1].Unpack(retry)
        assert info.reason == "RATE_LIMITED"
        assert info.metadata["plan"] == "free"
        assert info.metadata["retry_after_s"] == str(retry_after)
        delay_s = retry.retry_delay.ToNanoseconds() / 1e9
        assert math.ceil(delay_s) == retry_after
        # Another user, and a service account, are not held back by alice's limit.
        await _plan(channel, signer.token("usr_bob"))
        service_token = signer.token("svc_jobs", role="service", scopes=("internal",))
        for _ in range(5):
            await _plan(channel, service_token)


async def test_health_is_never_limited(service: tuple[RunningService, TestSigner]) -> None:
    running, _ = service
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(10):
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
