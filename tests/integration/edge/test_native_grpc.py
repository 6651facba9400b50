"""Native gRPC through the edge: reflection reaches an upstream, and streams to paths the edge
does not serve are answered at once, while the caller's request stream is still open (the
JSON buffer must never hold a gRPC stream until it ends)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from tests.fixtures.envoy import RunningEdge
from tests.integration.edge.upstreams import FEEDBACK_SERVICE, JOBS_SERVICE

PROMPT_S = 2.0


def _open_stream(
    channel: grpc.aio.Channel, path: str, timeout_s: float
) -> grpc.aio.StreamStreamCall:
    """A bidi call of raw bytes on path, with nothing written yet."""
    return channel.stream_stream(path)(timeout=timeout_s)


async def test_reflection_answers_through_the_edge_while_the_stream_stays_open(
    edge: RunningEdge,
) -> None:
    async with grpc.aio.insecure_channel(edge.process.grpc_target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )(timeout=10)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await asyncio.wait_for(call.read(), PROMPT_S)
        await call.write(
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=JOBS_SERVICE)
        )
        described = await asyncio.wait_for(call.read(), PROMPT_S)
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK

    assert isinstance(listed, reflection_pb2.ServerReflectionResponse)
    assert isinstance(described, reflection_pb2.ServerReflectionResponse)
    names = {service.name for service in listed.list_services_response.service}
    assert {JOBS_SERVICE, FEEDBACK_SERVICE} <= names
    assert described.file_descriptor_response.file_descriptor_proto


@pytest.mark.parametrize(
    "path",
    [
        "/gouache.inference.v1.InferenceService/StylizeBatch",
        "/gouache.tiling.v1.TilingService/PlanTiles",
        "/no.such.v1.Service/Method",
    ],
)
async def test_unserved_paths_answer_unimplemented_before_the_request_stream_ends(
    edge: RunningEdge, path: str
) -> None:
    async with grpc.aio.insecure_channel(edge.process.grpc_target) as channel:
        started = time.monotonic()
        # Nothing is written and writing is never done: the edge must answer on the headers.
        call = _open_stream(channel, path, timeout_s=30)
        code = await asyncio.wait_for(call.code(), PROMPT_S)
        elapsed = time.monotonic() - started
        details = await call.details()
        call.cancel()

    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "no public gRPC service at this path" in details
    assert elapsed < PROMPT_S
