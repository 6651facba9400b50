"""Upstreams, one Envoy edge in front of them, and an HTTP client, shared by the edge tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gouache.edge import Upstream
from tests.fixtures.envoy import EdgeFactory, RunningEdge, free_port
from tests.integration.edge.upstreams import FileServer, Recorder, start_files, start_grpc

GRACE_S = 1.0


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def file_server() -> FileServer:
    return FileServer()


@pytest.fixture(scope="module")
async def grpc_port(recorder: Recorder) -> AsyncIterator[int]:
    server, port = await start_grpc(recorder)
    yield port
    await server.stop(GRACE_S)


@pytest.fixture(scope="module")
async def files_port(file_server: FileServer) -> AsyncIterator[int]:
    runner, port = await start_files(file_server)
    yield port
    await runner.cleanup()


@pytest.fixture(scope="module")
def edge(envoy_edge: EdgeFactory, grpc_port: int, files_port: int) -> RunningEdge:
    """Envoy in front of the test upstreams; auth points at a port nobody listens on."""
    return envoy_edge(
        Upstream("127.0.0.1", grpc_port),
        Upstream("127.0.0.1", files_port),
        auth=Upstream("127.0.0.1", free_port()),
    )


@pytest.fixture
async def client(edge: RunningEdge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=30) as http:
        yield http
