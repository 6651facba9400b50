"""Request headers gRPC metadata cannot carry are dropped at the edge (gouache.edge.headers):
before, the upstream's gRPC server refused the whole call with INTERNAL, a 500."""

from __future__ import annotations

import grpc
import httpx

from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from tests.fixtures.envoy import RunningEdge
from tests.integration.edge.upstreams import Recorder


async def test_rest_requests_lose_headers_grpc_cannot_carry(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await client.post(
        "/v1/jobs",
        json={"content_url": "file:///a.png"},
        headers={
            "a!ho": "1",
            "x#y": "2",
            "grpc-timeout": "xyz",
            "x-trace-bin": "not base64!",
            "x-kept": "3",
        },
    )

    assert response.status_code == 200, response.text
    metadata = recorder.last("CreateJob").metadata
    assert metadata["x-kept"] == "3"
    assert not {"a!ho", "x#y", "grpc-timeout", "x-trace-bin"} & set(metadata)


async def test_native_grpc_keeps_its_deadline_and_binary_metadata(
    edge: RunningEdge, recorder: Recorder
) -> None:
    async with grpc.aio.insecure_channel(edge.process.grpc_target) as channel:
        stub = jobs_pb2_grpc.JobsServiceStub(channel)
        await stub.CreateJob(
            jobs_pb2.CreateJobRequest(content_url="file:///b.png"),
            metadata=(("x-trace-bin", b"\x00\x01"), ("x-kept", "4")),
            timeout=10,
        )

    metadata = recorder.last("CreateJob").metadata
    assert metadata["x-kept"] == "4"
    assert metadata["x-trace-bin"] == str(b"\x00\x01")
