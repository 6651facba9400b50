"""Signed file uploads and downloads stream through the edge to storage's HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from tests.fixtures.envoy import RunningEdge
from tests.integration.edge.upstreams import FileServer

RAW_TIMEOUT_S = 10.0


async def test_upload_reaches_storage_intact_and_downloads_back(
    client: httpx.AsyncClient, file_server: FileServer
) -> None:
    data = os.urandom(5_000_000)
    headers = {"content-type": "image/png"}

    uploaded = await client.put("/v1/files/content.png?sig=abc", content=data, headers=headers)
    downloaded = await client.get("/v1/files/content.png?sig=abc")

    assert uploaded.status_code == 200
    assert uploaded.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert file_server.files["content.png"].content_type == "image/png"
    assert downloaded.status_code == 200
    assert downloaded.content == data


async def test_upload_of_the_largest_size_passes(
    client: httpx.AsyncClient, edge: RunningEdge
) -> None:
    data = bytes(edge.config.max_upload_bytes)

    response = await client.put("/v1/files/largest.png", content=data)

    assert response.status_code == 200
    assert response.json()["size"] == len(data)


async def test_upload_over_the_limit_is_413_before_its_body(edge: RunningEdge) -> None:
    limit = edge.config.max_upload_bytes
    head = (
        f"PUT /v1/files/huge.png HTTP/1.1\r\nhost: edge\r\ncontent-type: image/png\r\n"
        f"content-length: {limit + 1}\r\n\r\n"
    )

    status, body = await _raw_request(edge, head.encode() + b"\0" * 1024)

    assert status == 413
    assert json.loads(body) == {
        "code": 8,
        "message": f"upload exceeds {limit} bytes",
        "details": [],
    }


async def test_upload_without_length_is_411(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    response = await client.put("/v1/files/chunked.png", content=chunks())

    assert response.status_code == 411
    assert response.json()["code"] == 3


async def _raw_request(edge: RunningEdge, request: bytes) -> tuple[int, bytes]:
    """Send bytes on a fresh connection and read one response with a Content-Length."""
    address = urlsplit(edge.base_url)
    async with asyncio.timeout(RAW_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode().strip().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in header_lines)
            body = await reader.readexactly(int(headers["content-length"]))
        finally:
            writer.close()
    return int(status_line.split(" ", 2)[1]), body
