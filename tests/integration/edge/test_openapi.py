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


async def test_head_answers_the_documents_headers(client: httpx.AsyncClient) -> None:
    response = await client.head("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b""
