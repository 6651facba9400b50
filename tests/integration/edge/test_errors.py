"""Errors through the real edge: gRPC statuses become their canonical HTTP codes, and every
error body, whether a servicer's or Envoy's own, is {code, message, details} JSON."""

from __future__ import annotations

import httpx
import pytest

from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.edge import MIB
from tests.integration.edge.upstreams import ABORT_PREFIX, RICH_ERROR_URL, Recorder

STATUS_MAPPING = [
    ("INVALID_ARGUMENT", 3, 400),
    ("FAILED_PRECONDITION", 9, 400),
    ("UNAUTHENTICATED", 16, 401),
    ("PERMISSION_DENIED", 7, 403),
    ("NOT_FOUND", 5, 404),
    ("ALREADY_EXISTS", 6, 409),
    ("RESOURCE_EXHAUSTED", 8, 429),
    ("INTERNAL", 13, 500),
    ("UNAVAILABLE", 14, 503),
    ("DEADLINE_EXCEEDED", 4, 504),
]


@pytest.mark.parametrize(("name", "code", "http_status"), STATUS_MAPPING)
async def test_grpc_status_maps_to_http(
    client: httpx.AsyncClient, name: str, code: int, http_status: int
) -> None:
    response = await client.post("/v1/jobs", json={"content_url": ABORT_PREFIX + name})

    assert response.status_code == http_status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": f"refused with {name}", "details": []}


async def test_rich_error_details_are_transcoded(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"content_url": RICH_ERROR_URL})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert body["message"] == "bad input"
    [detail] = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["field_violations"][0]["field"] == "content_url"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs", content=b'{"content_url": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == 3


async def test_unknown_path_is_404_naming_the_path_without_query(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/nowhere?sig=secret")

    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "no route for /v1/nowhere", "details": []}


async def test_grpc_path_with_json_is_404(client: httpx.AsyncClient) -> None:
    """Only google.api.http bindings are public over REST; no auto-mapping of gRPC paths."""
    response = await client.post("/gouache.jobs.v1.JobsService/CreateJob", json={})

    assert response.status_code == 404
    assert response.json()["code"] == 5


async def test_unknown_query_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/job_1", params={"colour": "red"})

    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert "colour" in response.json()["message"]


async def test_json_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"content_url": "x" * MIB})

    assert response.status_code == 413
    assert response.json() == {
        "code": 8,
        "message": f"request body exceeds {MIB} bytes",
        "details": [],
    }


async def test_json_body_under_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", json={"content_url": "x" * (MIB - 100)})

    assert response.status_code == 200


async def test_unknown_body_field_is_dropped_not_rejected(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    """Envoy's transcoder has no option to reject unknown JSON fields (envoyproxy/envoy#46623):
    it drops them and forwards the rest. Services cannot see what was dropped."""
    body = {"content_url": "c", "colour": "red", "params": {"alpha": 0.5, "strength": 2}}

    response = await client.post("/v1/jobs", json=body)

    assert response.status_code == 200
    request = recorder.last("CreateJob").request
    assert isinstance(request, jobs_pb2.CreateJobRequest)
    assert request.content_url == "c"
    assert request.params.alpha == pytest.approx(0.5)


async def test_unreachable_upstream_is_503_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/auth/whoami")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == 14
    assert "upstream connect error" in body["message"]


async def test_unimplemented_rpc_is_501(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/styles")

    assert response.status_code == 501
    assert response.json()["code"] == 12
