"""TLS at the edge (REST over HTTP/1.1 and native gRPC over h2 on one port, chosen by ALPN)
and mTLS from the edge to its gRPC upstreams, with certificates made by a throwaway CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.edge import Upstream, UpstreamTls
from tests.fixtures.envoy import EdgeFactory, RunningEdge
from tests.helpers.certs import ThrowawayCa
from tests.integration.edge.upstreams import Recorder, start_grpc

GRACE_S = 1.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    return ThrowawayCa(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def mtls_port(ca: ThrowawayCa) -> AsyncIterator[int]:
    """The fake jobs upstream, requiring a client certificate from the CA."""
    files = ca.issue("jobs")
    credentials = grpc.ssl_server_credentials(
        [(files.key.read_bytes(), files.cert.read_bytes())],
        root_certificates=files.ca.read_bytes(),
        require_client_auth=True,
    )
    server, port = await start_grpc(Recorder(), credentials)
    yield port
    await server.stop(GRACE_S)


@pytest.fixture(scope="module")
def tls_edge(
    envoy_edge: EdgeFactory, ca: ThrowawayCa, mtls_port: int, files_port: int
) -> RunningEdge:
    public = ca.issue("edge")
    client = ca.issue("edge-client")
    return envoy_edge(
        Upstream("127.0.0.1", mtls_port),
        Upstream("127.0.0.1", files_port),
        tls_cert=public.cert,
        tls_key=public.key,
        upstream_tls=UpstreamTls(ca=client.ca, cert=client.cert, key=client.key),
    )


def _trusting(ca_path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path))


async def test_rest_over_https(tls_edge: RunningEdge, ca: ThrowawayCa) -> None:
    assert tls_edge.base_url.startswith("https://")
    async with httpx.AsyncClient(
        base_url=tls_edge.base_url, verify=_trusting(ca.ca_path), timeout=10
    ) as http:
        response = await http.get("/v1/jobs/job_7")

    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.json()["job_id"] == "job_7"


async def test_native_grpc_over_tls_on_the_same_port(
    tls_edge: RunningEdge, ca: ThrowawayCa
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.ca_path.read_bytes())
    async with grpc.aio.secure_channel(tls_edge.process.grpc_target, credentials) as channel:
        jobs = jobs_pb2_grpc.JobsServiceStub(channel)
        job = await jobs.GetJob(jobs_pb2.GetJobRequest(job_id="job_8"), timeout=10)
        updates = [
            update.job.status
            async for update in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id="j"), timeout=10)
        ]

    assert job.job_id == "job_8"
    assert updates == ["running", "succeeded"]


async def test_plaintext_is_refused_on_the_tls_port(tls_edge: RunningEdge) -> None:
    plain = tls_edge.base_url.replace("https://", "http://")
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"{plain}/v1/jobs/job_1")


async def test_without_upstream_tls_the_mtls_upstream_is_unreachable(
    envoy_edge: EdgeFactory, mtls_port: int, files_port: int
) -> None:
    """The check that the upstream really demands mTLS, so the tests above went through it."""
    edge = envoy_edge(Upstream("127.0.0.1", mtls_port), Upstream("127.0.0.1", files_port))
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
        response = await http.get("/v1/jobs/job_1")

    assert response.status_code == 503
