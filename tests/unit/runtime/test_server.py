"""The common bootstrap on a real in-process server: auth, error mapping, health."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from gouache.runtime.auth import AUTHENTICATED, TokenVerifier
from gouache.runtime.context import current_principal
from gouache.runtime.errors import InvalidArgument
from gouache.runtime.server import RunningService, ServiceSpec, start_service
from gouache.runtime.settings import ServiceSettings
from tests.helpers.tokens import TestSigner

SERVICE = "gouache.tiling.v1.TilingService"


class _Tiling(tiling_pb2_grpc.TilingServiceServicer):
    async def PlanTiles(
        self, request: tiling_pb2.PlanTilesRequest, context: object
    ) -> tiling_pb2.PlanTilesResponse:
        if request.width <= 0:
            raise InvalidArgument("width must be positive", field="width", reason="bad_width")
        if request.width == 13:
            raise RuntimeError("secret internals")
        if request.width == 503:
            raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.9', 5432)")
        return tiling_pb2.PlanTilesResponse(tiles=[tiling_pb2.Tile(width=request.width)])

    async def GetWorkerStatus(
        self, request: object, context: object
    ) -> tiling_pb2.GetWorkerStatusResponse:
        return tiling_pb2.GetWorkerStatusResponse(running_job_ids=[current_principal().user_id])


@pytest.fixture
async def service() -> AsyncIterator[tuple[RunningService, TestSigner]]:
    signer = TestSigner()
    spec = ServiceSpec(
        name="tiling",
        service_names=[SERVICE],
        register=lambda server: tiling_pb2_grpc.add_TilingServiceServicer_to_server(
            _Tiling(), server
        ),
        policy={
            f"/{SERVICE}/PlanTiles": "write:jobs",
            f"/{SERVICE}/GetWorkerStatus": AUTHENTICATED,
        },
    )
    running = await start_service(ServiceSettings(), spec, TokenVerifier(signer.fetch))
    yield running, signer
    await running.stop(0)


async def _call(
    running: RunningService, width: int, token: str | None
) -> tiling_pb2.PlanTilesResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = tiling_pb2_grpc.TilingServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await stub.PlanTiles(
            tiling_pb2.PlanTilesRequest(width=width), metadata=metadata, timeout=5
        )


async def test_valid_token_with_scope_is_served(service: tuple[RunningService, TestSigner]) -> None:
    running, signer = service
    response = await _call(running, 64, signer.token())
    assert response.tiles[0].width == 64


@pytest.mark.parametrize(
    ("token_kind", "code"),
    [
        ("missing", grpc.StatusCode.UNAUTHENTICATED),
        ("garbage", grpc.StatusCode.UNAUTHENTICATED),
        ("expired", grpc.StatusCode.UNAUTHENTICATED),
        ("forged", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong_audience", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong_scope", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_bad_tokens_are_refused(
    service: tuple[RunningService, TestSigner], token_kind: str, code: grpc.StatusCode
) -> None:
    running, signer = service
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "expired": signer.token(ttl_s=-60),
        "forged": TestSigner(kid=signer.kid).token(),
        "wrong_audience": signer.token(audience="someone-else"),
        "wrong_scope": signer.token(scopes=("read:jobs",)),
    }[token_kind]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(running, 64, token)
    assert caught.value.code() == code
    assert caught.value.details()


async def test_domain_error_maps_to_status_with_details(
    service: tuple[RunningService, TestSigner],
) -> None:
    running, signer = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(running, 0, signer.token())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "width must be positive"
    raw = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "bad_width"
    assert info.metadata["field"] == "width"


async def test_unexpected_error_is_internal_and_generic(
    service: tuple[RunningService, TestSigner],
) -> None:
    running, signer = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(running, 13, signer.token())
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")


async def test_a_backing_service_down_is_unavailable_with_a_retry_hint(
    service: tuple[RunningService, TestSigner],
) -> None:
    running, signer = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(running, 503, signer.token())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == (
        "a backing service (database or object store) is unavailable right now "
        "(ConnectionRefusedError); retry in a few seconds"
    )
    trailers = dict(caught.value.trailing_metadata() or ())
    assert trailers["retry-after"] == "2"
    assert "10.0.0.9" not in (caught.value.details() or "")


async def test_principal_reaches_the_servicer(service: tuple[RunningService, TestSigner]) -> None:
    running, signer = service
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = tiling_pb2_grpc.TilingServiceStub(channel)
        response = await stub.GetWorkerStatus(
            tiling_pb2.GetWorkerStatusRequest(),
            metadata=(("authorization", f"Bearer {signer.token('usr_42', scopes=())}"),),
            timeout=5,
        )
    assert list(response.running_job_ids) == ["usr_42"]


async def test_health_is_serving_and_public(service: tuple[RunningService, TestSigner]) -> None:
    running, _ = service
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
