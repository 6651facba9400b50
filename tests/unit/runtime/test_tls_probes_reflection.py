"""The common bootstrap's options: mTLS between services, /healthz on the metrics port, and
server reflection under v1 and v1alpha."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from gouache.contracts.auth.v1 import auth_pb2
from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from gouache.runtime.auth import TokenVerifier
from gouache.runtime.clients import open_channel
from gouache.runtime.server import RunningService, ServiceSpec, create_server, start_service
from gouache.runtime.settings import ServiceSettings
from gouache.runtime.tls import TlsFiles
from tests.helpers.certs import CertFiles, ThrowawayCa
from tests.helpers.tokens import TestSigner

SERVICE = "gouache.tiling.v1.TilingService"
AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class _Tiling(tiling_pb2_grpc.TilingServiceServicer):
    async def PlanTiles(
        self, request: tiling_pb2.PlanTilesRequest, context: object
    ) -> tiling_pb2.PlanTilesResponse:
        return tiling_pb2.PlanTilesResponse(tiles=[tiling_pb2.Tile(width=request.width)])


def _spec() -> ServiceSpec:
    return ServiceSpec(
        name="tiling",
        service_names=[SERVICE],
        register=lambda server: tiling_pb2_grpc.add_TilingServiceServicer_to_server(
            _Tiling(), server
        ),
        policy={f"/{SERVICE}/PlanTiles": "write:jobs"},
        described_services=[AUTH_SERVICE],
    )


def _files(certs: CertFiles) -> TlsFiles:
    return TlsFiles(cert=certs.cert, key=certs.key, ca=certs.ca)


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCa:
    return ThrowawayCa(tmp_path / "pki")


@pytest.fixture
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture
async def mtls_service(ca: ThrowawayCa, signer: TestSigner) -> AsyncIterator[RunningService]:
    server = ca.issue("tiling")
    settings = ServiceSettings(
        tls_cert_file=server.cert, tls_key_file=server.key, tls_ca_file=server.ca
    )
    running = await start_service(settings, _spec(), TokenVerifier(signer.fetch))
    yield running
    await running.stop(0)


async def _plan(channel: grpc.aio.Channel, token: str) -> int:
    reply = await tiling_pb2_grpc.TilingServiceStub(channel).PlanTiles(
        tiling_pb2.PlanTilesRequest(width=48),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=5,
    )
    return int(reply.tiles[0].width)


async def test_mtls_call_with_a_client_certificate_from_the_ca_is_served(
    mtls_service: RunningService, ca: ThrowawayCa, signer: TestSigner
) -> None:
    client = _files(ca.issue("jobs"))
    token = signer.token()

    async with open_channel(
        f"localhost:{mtls_service.port}", credentials=client.channel_credentials()
    ) as channel:
        assert await _plan(channel, token) == 48


@pytest.mark.parametrize("client", ["plaintext", "no_client_certificate", "other_ca"])
async def test_mtls_refuses_callers_without_a_certificate_from_the_ca(
    mtls_service: RunningService, ca: ThrowawayCa, tmp_path: Path, client: str
) -> None:
    target = f"localhost:{mtls_service.port}"
    if client == "plaintext":
        channel = grpc.aio.insecure_channel(target)
    elif client == "no_client_certificate":
        channel = grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=ca.ca_path.read_bytes())
        )
    else:
        stranger = ThrowawayCa(tmp_path / "other", name="another CA").issue("intruder")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca.ca_path.read_bytes(),
            private_key=stranger.key.read_bytes(),
            certificate_chain=stranger.cert.read_bytes(),
        )
        channel = grpc.aio.secure_channel(target, credentials)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


class _SvcSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GOUACHE_SVC_", frozen=True, extra="ignore")


def test_tls_settings_come_from_the_environment_all_three_or_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _SvcSettings().tls_files() is None
    assert _SvcSettings().channel_credentials() is None
    monkeypatch.setenv("GOUACHE_SVC_TLS_CERT_FILE", str(tmp_path / "c.pem"))
    monkeypatch.setenv("GOUACHE_SVC_TLS_KEY_FILE", str(tmp_path / "k.pem"))
    with pytest.raises(ValidationError, match="together"):
        _SvcSettings()
    monkeypatch.setenv("GOUACHE_SVC_TLS_CA_FILE", str(tmp_path / "ca.pem"))

    assert _SvcSettings().tls_files() == TlsFiles(
        cert=tmp_path / "c.pem", key=tmp_path / "k.pem", ca=tmp_path / "ca.pem"
    )


async def test_healthz_follows_serving_and_metrics_still_serve() -> None:
    running = await create_server(ServiceSettings(metrics_port=0), _spec(), None)
    url = f"http://127.0.0.1:{running.metrics_port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            before = await http.get("/healthz")
            running.set_serving(True)
            serving = await http.get("/healthz")
            running.set_serving(False)
            after = await http.get("/healthz")
            metrics = await http.get("/metrics")
    finally:
        await running.stop(0)

    assert (before.status_code, before.text) == (503, "NOT_SERVING\n")
    assert (serving.status_code, serving.text) == (200, "SERVING\n")
    assert after.status_code == 503
    assert metrics.status_code == 200
    assert "gouache_grpc_requests_total" in metrics.text


async def test_metrics_port_closes_with_the_service() -> None:
    running = await start_service(ServiceSettings(metrics_port=0), _spec(), None)
    url = f"http://127.0.0.1:{running.metrics_port}/healthz"
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(url)).status_code == 200
        await running.stop(0)
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_lists_own_and_described_services_under_both_versions(
    version: str,
) -> None:
    running = await start_service(ServiceSettings(), _spec(), None)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            requests = [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=AUTH_SERVICE),
            ]
            replies = [reply async for reply in call(iter(requests), timeout=5)]
    finally:
        await running.stop(0)

    listed = {service.name for service in replies[0].list_services_response.service}
    assert {SERVICE, AUTH_SERVICE, "grpc.health.v1.Health"} <= listed
    assert replies[1].file_descriptor_response.file_descriptor_proto
