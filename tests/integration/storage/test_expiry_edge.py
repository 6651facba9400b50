"""An expired image through the real Envoy edge: REST answers 410 Gone with the reason
`expired` (storage asks for it in x-gouache-http-status; the edge applies it), native gRPC
through the same edge still gets FAILED_PRECONDITION, and DELETE /v1/images/{id} works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import httpx
import pytest

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.db import utc_now
from gouache.edge import Upstream
from services.storage.records import EXPIRING
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


async def test_expired_is_410_over_rest_and_failed_precondition_over_grpc(
    behind_edge: tuple[Harness, RunningEdge],
) -> None:
    storage, edge = behind_edge
    kept = await storage.upload(image_bytes(seed=1), metadata=storage.auth(), kind="content")
    image = await storage.upload(image_bytes(seed=2), metadata=storage.auth(), kind="content")
    lifecycle = storage.service.lifecycle
    assert await lifecycle.store.begin_removal(
        image.image_id, EXPIRING, utc_now() - timedelta(hours=1)
    )
    await lifecycle.sweep()
    bearer = {"Authorization": f"Bearer {storage.token()}"}
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
        gone = await http.get(f"/v1/images/{image.image_id}", headers=bearer)
        assert gone.status_code == 410, gone.text
        assert "x-gouache-http-status" not in gone.headers
        body = gone.json()
        assert "expired on" in body["message"]
        assert body["details"][0]["reason"] == "expired"
        # Other errors keep the transcoder's status.
        missing = await http.get("/v1/images/img_01M8Q3BSMQ156EJ3JWG3MR0DFT", headers=bearer)
        assert missing.status_code == 404
        deleted = await http.delete(f"/v1/images/{kept.image_id}", headers=bearer)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["image_id"] == kept.image_id
        assert (await http.get(f"/v1/images/{kept.image_id}", headers=bearer)).status_code == 404
    async with grpc.aio.insecure_channel(edge.base_url.removeprefix("http://")) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as native:
            await stub.GetImage(
                storage_pb2.GetImageRequest(image_id=image.image_id), metadata=storage.auth()
            )
    assert native.value.code() == grpc.StatusCode.FAILED_PRECONDITION
