"""GET /openapi.json through the real edge: the generated document, answered by Envoy."""

from __future__ import annotations

import httpx

from gouache.edge.openapi import packaged_openapi


async def test_the_edge_serves_the_generated_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == packaged_openapi().read_bytes()
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/v1/jobs/{job_id}" in document["paths"]


async def test_other_methods_on_the_document_are_404_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/openapi.json", json={})

    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": "no route for /openapi.json",
        "details": [],
    }
