"""A REST path asked with a method it does not take is 405 with Allow, not 404 (gouache.edge.methods)."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/v1/jobs", "GET, POST"),
        ("PUT", "/v1/jobs/job_1", "DELETE, GET"),
        ("GET", "/v1/jobs/job_1:cancel", "POST"),
        ("PUT", "/v1/models/gatys/stats", "GET"),
        ("TRACE", "/v1/auth/token", "POST"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_is_405_naming_the_methods(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    body = response.json()
    assert body["code"] == 12  # UNIMPLEMENTED
    assert body["message"].endswith(f"takes {allow} only")


async def test_the_right_method_is_still_transcoded(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/jobs", json={"content_url": "file:///a.png"})
    # {job_id} alone must not take "job_1:cancel" and refuse the POST that CancelJob takes.
    canceled = await client.post("/v1/jobs/job_1:cancel", json={})

    assert created.status_code == 200
    assert created.json()["job_id"] == "job_1"
    # The test upstream has no CancelJob: its UNIMPLEMENTED shows the call was sent there.
    assert canceled.status_code == 501


async def test_an_unknown_path_is_still_404(client: httpx.AsyncClient) -> None:
    response = await client.patch("/v1/nothing-here")

    assert response.status_code == 404
