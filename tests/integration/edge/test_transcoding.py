"""REST requests through the real edge reach the gRPC servicers, and their answers come back
as proto3 JSON with the proto field names."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import httpx
import pytest

from gouache.contracts.feedback.v1 import feedback_pb2
from gouache.contracts.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from gouache.contracts.tiling.v1 import tiling_pb2, tiling_pb2_grpc
from tests.fixtures.envoy import RunningEdge
from tests.integration.edge.upstreams import Recorder

ACCESS_LOG_WAIT_S = 15.0

PARAMS: dict[str, Any] = {
    "alpha": 0.7,
    "tv_weight": 1e-5,
    "luminance_only": True,
    "histogram_match": False,
    "tile_size": 768,
    "overlap": 64,
    "seed": 42,
    "weights": [1.0],
    "prompt": None,
}
CREATE_JOB: dict[str, Any] = {
    "content_url": "file://content.png",
    "style_urls": ["a"],
    "model_version": "adain",
    "params": PARAMS,
}


async def test_create_job_reaches_the_servicer_with_every_field(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await client.post("/v1/jobs", json=CREATE_JOB)

    assert response.status_code == 200
    request = recorder.last("CreateJob").request
    assert isinstance(request, jobs_pb2.CreateJobRequest)
    assert request.content_url == "file://content.png"
    assert list(request.style_urls) == ["a"]
    assert request.model_version == "adain"
    params = request.params
    assert params.alpha == pytest.approx(0.7)
    assert params.tv_weight == pytest.approx(1e-5)
    assert params.luminance_only is True
    assert params.histogram_match is False
    assert (params.tile_size, params.overlap, params.seed) == (768, 64, 42)
    assert list(params.weights) == [1.0]
    assert not params.HasField("prompt"), "JSON null leaves an optional field unset"


async def test_create_job_answers_snake_case_with_zero_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json=CREATE_JOB)

    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "job_id": "job_1",
        "status": "pending",
        "eta_seconds": 0,
        "model_version": "adain",
        "cached": False,
    }


async def test_get_job_answers_the_job_itself(client: httpx.AsyncClient) -> None:
    """GET /v1/jobs/{job_id} answers the Job flat, as the requirements show it: zero values
    printed, latency_ms a JSON number (int32), unset optional fields left out."""
    response = await client.get("/v1/jobs/job_7")

    assert response.status_code == 200
    job = response.json()
    assert job["job_id"] == "job_7"
    assert job["status"] == "pending"
    assert job["latency_ms"] == 0
    assert job["eta_seconds"] == 0
    assert job["progress"] == 0
    assert job["style_urls"] == []
    assert "result_url" not in job
    assert "error" not in job
    assert "params" not in job


async def test_submit_feedback_round_trips(client: httpx.AsyncClient, recorder: Recorder) -> None:
    body = {"job_id": "job_1", "rating": 5, "comments": "lovely"}

    response = await client.post("/v1/feedback", json=body)

    assert response.status_code == 200
    assert response.json() == {"feedback_id": "fb_1", "job_id": "job_1", "rating": 5}
    request = recorder.last("SubmitFeedback").request
    assert isinstance(request, feedback_pb2.SubmitFeedbackRequest)
    assert request.comments == "lovely"


async def test_headers_arrive_as_metadata_with_a_request_id(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    headers = {"authorization": "Bearer token-1", "idempotency-key": "key-1"}

    response = await client.post("/v1/jobs", json=CREATE_JOB, headers=headers)

    metadata = recorder.last("CreateJob").metadata
    assert metadata["authorization"] == "Bearer token-1"
    assert metadata["idempotency-key"] == "key-1"
    assert metadata["x-request-id"]
    assert response.headers["x-request-id"] == metadata["x-request-id"]


async def test_native_grpc_passes_through(edge: RunningEdge) -> None:
    async with grpc.aio.insecure_channel(edge.base_url.removeprefix("http://")) as channel:
        jobs = jobs_pb2_grpc.JobsServiceStub(channel)
        reply = await jobs.GetJob(jobs_pb2.GetJobRequest(job_id="job_9"))
        updates = [u.job.status async for u in jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id="j"))]

    assert reply.job_id == "job_9"
    assert updates == ["running", "succeeded"]


async def test_internal_services_are_not_routed(edge: RunningEdge) -> None:
    async with grpc.aio.insecure_channel(edge.base_url.removeprefix("http://")) as channel:
        tiling = tiling_pb2_grpc.TilingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await tiling.GetWorkerStatus(tiling_pb2.GetWorkerStatusRequest())

    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_access_log_is_json_lines_without_query(
    client: httpx.AsyncClient, edge: RunningEdge
) -> None:
    response = await client.get("/v1/jobs", params={"page_token": "secret"})
    request_id = response.headers["x-request-id"]

    entry = await _access_log_entry(edge, request_id)

    assert response.status_code == 200
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/jobs"
    assert entry["grpc_path"] == "/gouache.jobs.v1.JobsService/ListJobs"
    assert entry["status"] == 200
    assert entry["upstream"] == "jobs"
    assert "secret" not in str(entry)


async def _access_log_entry(edge: RunningEdge, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + ACCESS_LOG_WAIT_S
    while time.monotonic() < deadline:
        for entry in edge.access_log():
            if entry.get("request_id") == request_id:
                return entry
        await asyncio.sleep(0.1)
    raise AssertionError(f"no access log entry for {request_id} in {ACCESS_LOG_WAIT_S} s")
