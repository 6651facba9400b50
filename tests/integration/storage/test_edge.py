"""Storage behind the real Envoy edge: REST sign, signed PUT and GET, errors, styles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gouache.edge import Upstream
from tests.fixtures.envoy import EdgeFactory, RunningEdge, free_port
from tests.unit.storage.support import Harness, image_bytes, start_harness, stop_harness


@pytest.fixture
async def behind_edge(
    tmp_path: Path, envoy_edge: EdgeFactory
) -> AsyncIterator[tuple[Harness, RunningEdge]]:
    listen_port = free_port()
    harness = await start_harness(tmp_path, public_url=f"http://127.0.0.1:{listen_port}")
    try:
        edge = envoy_edge(
            Upstream("127.0.0.1", harness.running.port),
            Upstream("127.0.0.1", harness.service.files.port),
            listen_port=listen_port,
        )
        yield harness, edge
    finally:
        await stop_harness(harness)


async def test_upload_and_download_through_the_edge(
    behind_edge: tuple[Harness, RunningEdge],
) -> None:
    storage, edge = behind_edge
    bearer = {"Authorization": f"Bearer {storage.token()}"}
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
        signed = await http.post(
            "/v1/uploads/sign",
            json={"filename": "me.png", "content_type": "image/png", "kind": "style"},
            headers=bearer,
        )
        assert signed.status_code == 200, signed.text
        ticket = signed.json()
        assert ticket["upload_url"].startswith(f"{edge.base_url}/v1/files/img_")
        data = image_bytes("png", seed=21)

        forged = await http.put(
            ticket["upload_url"].replace("sig=", "sig=x"),
            content=data,
            headers={"Content-Type": "image/png"},
        )
        assert forged.status_code == 403
        assert forged.json()["code"] == 7

        stored = await http.put(
            ticket["upload_url"], content=data, headers={"Content-Type": "image/png"}
        )
        assert stored.status_code == 201, stored.text
        image_id = stored.json()["image_id"]
        assert stored.json()["file_url"] == ticket["file_url"]

        again = await http.put(
            ticket["upload_url"], content=data, headers={"Content-Type": "image/png"}
        )
        assert again.status_code == 409
        assert again.json()["code"] == 6

        described = await http.get(f"/v1/images/{image_id}", headers=bearer)
        assert described.status_code == 200, described.text
        body = described.json()
        assert body["sha256"] == stored.json()["sha256"]

        downloaded = await http.get(ticket["file_url"], headers=bearer)
        assert downloaded.status_code == 200
        assert downloaded.content == data
        assert downloaded.headers["content-type"] == "image/png"

        other = {"Authorization": f"Bearer {storage.token('usr_bob')}"}
        assert (await http.get(ticket["file_url"], headers=other)).status_code == 404
        assert (await http.get(f"/v1/images/{image_id}", headers=other)).status_code == 404

        styles = await http.get("/v1/styles", params={"curated": "false"}, headers=bearer)
        assert styles.status_code == 200, styles.text
        assert [style["title"] for style in styles.json()["styles"]] == ["Me"]

        bad_type = await http.post(
            "/v1/uploads/sign",
            json={"filename": "a.gif", "content_type": "image/gif"},
            headers=bearer,
        )
        assert bad_type.status_code == 400
        assert "image/png, image/jpeg, image/webp" in bad_type.json()["message"]
