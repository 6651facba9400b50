"""Content safety through the real Envoy edge: REST and native gRPC uploads refused by the NSFW
threshold (0 here, which refuses every image: benign images only), and the score on the record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.edge import Upstream
from tests.e2e.images import small
from tests.fixtures.envoy import EdgeFactory, RunningEdge, free_port
from tests.unit.storage.support import Harness, start_harness, stop_harness

Behind = Callable[..., AbstractAsyncContextManager[tuple[Harness, RunningEdge]]]


@pytest.fixture
def behind_edge(tmp_path: Path, envoy_edge: EdgeFactory) -> Behind:
    @asynccontextmanager
    async def start(**settings: Any) -> AsyncIterator[tuple[Harness, RunningEdge]]:
        listen_port = free_port()
        harness = await start_harness(
            tmp_path, public_url=f"http://127.0.0.1:{listen_port}", **settings
        )
        try:
            edge = envoy_edge(
                Upstream("127.0.0.1", harness.running.port),
                Upstream("127.0.0.1", harness.service.files.port),
                listen_port=listen_port,
            )
            yield harness, edge
        finally:
            await stop_harness(harness)

    return start


async def test_uploads_above_the_threshold_are_refused_over_rest_and_grpc(
    behind_edge: Behind,
) -> None:
    data = small("astronaut", 128)
    async with behind_edge(nsfw_threshold=0.0) as (storage, edge):
        bearer = {"Authorization": f"Bearer {storage.token()}"}
        async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
            signed = await http.post(
                "/v1/uploads/sign",
                json={"filename": "me.png", "content_type": "image/png"},
                headers=bearer,
            )
            assert signed.status_code == 200, signed.text
            ticket = signed.json()
            refused = await http.put(
                ticket["upload_url"], content=data, headers={"Content-Type": "image/png"}
            )
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"].startswith("application/json")
            body = refused.json()
            assert body["code"] == 3
            assert "refused by the content-safety filter" in body["message"]
            assert [detail["reason"] for detail in body["details"]] == ["unsafe_content"]
            missing = await http.get(f"/v1/images/{ticket['image_id']}", headers=bearer)
            assert missing.status_code == 404

        host = edge.base_url.removeprefix("http://")
        async with grpc.aio.insecure_channel(host) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)

            async def messages() -> AsyncIterator[storage_pb2.UploadImageRequest]:
                yield storage_pb2.UploadImageRequest(
                    header=storage_pb2.UploadImageHeader(filename="me.png", kind="style")
                )
                yield storage_pb2.UploadImageRequest(chunk=data)

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.UploadImage(messages(), metadata=storage.auth(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "refused by the content-safety filter" in (caught.value.details() or "")
        raw = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
        info = error_details_pb2.ErrorInfo()
        assert status_pb2.Status.FromString(raw).details[0].Unpack(info)
        assert info.reason == "unsafe_content"
        assert storage.stored_files() == []


async def test_the_score_is_on_the_image_over_rest(behind_edge: Behind) -> None:
    async with behind_edge() as (storage, edge):
        bearer = {"Authorization": f"Bearer {storage.token()}"}
        async with httpx.AsyncClient(base_url=edge.base_url, timeout=10) as http:
            signed = await http.post(
                "/v1/uploads/sign",
                json={"filename": "cat.png", "content_type": "image/png"},
                headers=bearer,
            )
            ticket = signed.json()
            stored = await http.put(
                ticket["upload_url"],
                content=small("chelsea", 128),
                headers={"Content-Type": "image/png"},
            )
            assert stored.status_code == 201, stored.text
            described = await http.get(f"/v1/images/{ticket['image_id']}", headers=bearer)
        assert described.status_code == 200, described.text
        score = described.json()["nsfw_score"]
        assert 0.0 <= score < storage.settings.nsfw_threshold
        assert score == pytest.approx(stored.json()["nsfw_score"])
