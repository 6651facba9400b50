"""WatchJob over REST: the real edge streams it as server-sent events, one per message, each
sent on as the upstream writes it, and answers errors before the first message as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from gouache.client.events import StreamCut, aiter_events, aiter_job_updates
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.edge import Upstream
from gouache.runtime.ports import free_port
from tests.fixtures.envoy import EdgeFactory, RunningEdge

EVENT_WAIT_S = 10.0
GRACE_S = 1.0
# The edge's timeout for ordinary requests, short here so that a stream outlives it.
REQUEST_TIMEOUT_S = 1.0


class GatedWatch(jobs_pb2_grpc.JobsServiceServicer):
    """WatchJob as the jobs service streams it, driven by the test.

    job "gated": one message, then the next only once the test has read the first (so the
    edge must send each message on at once); "abandoned": one message, then nothing until the
    call is cancelled (`ended` set); "final": one final message; "missing" and
    "no-token": NOT_FOUND and UNAUTHENTICATED before any message; "cut": one message, then
    INTERNAL."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.ended = asyncio.Event()
        self.metadata: dict[str, str] = {}

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        self.metadata = {key: str(value) for key, value in context.invocation_metadata() or ()}
        job_id = request.job_id
        if job_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found")
        if job_id == "no-token":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        if job_id == "final":
            yield _message(job_id, "succeeded", 1.0)
            return
        if job_id == "abandoned":
            try:
                yield _message(job_id, "running", 0.25)
                await asyncio.Event().wait()  # no further change: only the client can end it
            finally:
                self.ended.set()
        yield _message(job_id, "running", 0.25)
        if job_id == "cut":
            await context.abort(grpc.StatusCode.INTERNAL, "the watch broke")
        await asyncio.wait_for(self.gate.wait(), EVENT_WAIT_S)
        yield _message(job_id, "running", 0.75)
        yield _message(job_id, "succeeded", 1.0)


def _message(job_id: str, status: str, progress: float) -> jobs_pb2.WatchJobResponse:
    return jobs_pb2.WatchJobResponse(
        job=jobs_pb2.Job(job_id=job_id, status=status, progress=progress)
    )


@pytest.fixture(scope="module")
def servicer() -> GatedWatch:
    # The generated base answers UNIMPLEMENTED for every RPC the fake leaves out.
    return GatedWatch()  # type: ignore[abstract]


@pytest.fixture(scope="module")
async def grpc_port(servicer: GatedWatch) -> AsyncIterator[int]:
    server = grpc.aio.server()
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(GRACE_S)


@pytest.fixture(scope="module")
def edge(envoy_edge: EdgeFactory, grpc_port: int) -> RunningEdge:
    return envoy_edge(
        Upstream("127.0.0.1", grpc_port),
        Upstream("127.0.0.1", free_port()),
        request_timeout_s=REQUEST_TIMEOUT_S,
    )


@pytest.fixture
async def client(edge: RunningEdge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=EVENT_WAIT_S) as http:
        yield http


async def test_each_message_is_an_event_sent_on_at_once(
    client: httpx.AsyncClient, servicer: GatedWatch
) -> None:
    servicer.gate.clear()
    headers = {"authorization": "Bearer token-1"}
    async with client.stream("GET", "/v1/jobs/gated:events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = aiter_events(response)
        first = await asyncio.wait_for(anext(events), EVENT_WAIT_S)
        # The upstream holds the rest back until the first event has arrived here, and
        # longer than the edge's request timeout, which must not end the stream.
        await asyncio.sleep(REQUEST_TIMEOUT_S * 1.5)
        servicer.gate.set()
        rest = [event async for event in events]

    jobs = [event["job"] for event in (first, *rest)]
    assert [(job["status"], job["progress"]) for job in jobs] == [
        ("running", 0.25),
        ("running", 0.75),
        ("succeeded", 1.0),
    ]
    assert servicer.metadata["authorization"] == "Bearer token-1"


async def test_a_client_that_goes_away_ends_the_watch_upstream(
    client: httpx.AsyncClient, servicer: GatedWatch
) -> None:
    """A closed browser tab must not leave a WatchJob (and its subscriptions) running."""
    servicer.ended.clear()
    async with client.stream("GET", "/v1/jobs/abandoned:events") as response:
        first = await asyncio.wait_for(anext(aiter_events(response)), EVENT_WAIT_S)
    assert first["job"]["status"] == "running"

    await asyncio.wait_for(servicer.ended.wait(), EVENT_WAIT_S)


async def test_events_are_neither_cached_nor_buffered_by_proxies(
    client: httpx.AsyncClient, edge: RunningEdge
) -> None:
    response = await client.get("/v1/jobs/final:events")

    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    async with grpc.aio.insecure_channel(edge.base_url.removeprefix("http://")) as channel:
        call = jobs_pb2_grpc.JobsServiceStub(channel).WatchJob(
            jobs_pb2.WatchJobRequest(job_id="final")
        )
        statuses = [update.job.status async for update in call]
        native_headers = dict(await call.initial_metadata())
    assert statuses == ["succeeded"]
    assert "x-accel-buffering" not in native_headers


async def test_the_wire_format_is_data_lines_and_blank_lines(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/final:events")

    assert response.status_code == 200
    assert response.text.endswith("\n\n")
    (event,) = response.text.removesuffix("\n\n").split("\n\n")
    assert event.startswith("data: ")
    assert json.loads(event.removeprefix("data: "))["job"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("job_id", "status", "code", "message"),
    [
        ("missing", 404, 5, "job missing not found"),
        ("no-token", 401, 16, "missing bearer token"),
    ],
)
async def test_an_error_before_the_first_event_is_a_json_error(
    client: httpx.AsyncClient, job_id: str, status: int, code: int, message: str
) -> None:
    response = await client.get(f"/v1/jobs/{job_id}:events")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": message, "details": []}


async def test_an_error_after_the_first_event_ends_the_stream_early(
    client: httpx.AsyncClient,
) -> None:
    """HTTP/1.1 has no trailers to carry the status: the stream just ends before a final
    state, which the SDK's reader reports as StreamCut with the last state it saw."""
    seen: list[str] = []
    async with client.stream("GET", "/v1/jobs/cut:events") as response:
        assert response.status_code == 200
        with pytest.raises(StreamCut) as cut:
            await _read_statuses(response, seen)

    assert seen == ["running"]
    assert cut.value.job_id == "cut"
    assert cut.value.last is not None
    assert cut.value.last["progress"] == 0.25


async def _read_statuses(response: httpx.Response, seen: list[str]) -> None:
    async for job in aiter_job_updates(response):
        seen.append(job["status"])


async def test_an_upstream_that_dies_mid_stream_is_a_cut_stream(envoy_edge: EdgeFactory) -> None:
    """The jobs replica goes away after the first event (a crash, a rollout): the client
    learns that the stream was cut, with the last state, and never waits forever."""
    servicer = GatedWatch()  # type: ignore[abstract]
    server = grpc.aio.server()
    jobs_pb2_grpc.add_JobsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        edge = envoy_edge(Upstream("127.0.0.1", port), Upstream("127.0.0.1", free_port()))
        seen: list[str] = []
        async with (
            httpx.AsyncClient(base_url=edge.base_url, timeout=EVENT_WAIT_S) as http,
            http.stream("GET", "/v1/jobs/abandoned:events") as response,
        ):
            updates = aiter_job_updates(response)
            seen.append((await asyncio.wait_for(anext(updates), EVENT_WAIT_S))["status"])
            await server.stop(None)
            with pytest.raises(StreamCut) as cut:
                await asyncio.wait_for(anext(updates), EVENT_WAIT_S)
    finally:
        await server.stop(None)

    assert seen == ["running"]
    assert cut.value.last is not None
    assert cut.value.last["status"] == "running"
