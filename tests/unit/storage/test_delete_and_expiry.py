"""DeleteImage over gRPC, and an expired image over the file server (410 with its reason),
against an in-process storage service."""

from __future__ import annotations

from datetime import timedelta

import grpc
import httpx
import pytest

from gouache.contracts.storage.v1 import storage_pb2
from gouache.db import utc_now
from services.storage.records import EXPIRING
from tests.unit.storage.support import Harness, image_bytes


async def test_delete_image_over_grpc(storage: Harness) -> None:
    image = await storage.upload(image_bytes(seed=1), metadata=storage.auth(), kind="content")
    assert image.HasField("expires_at")
    days = (image.expires_at.ToDatetime() - image.created_at.ToDatetime()).days
    assert days == storage.settings.retention_days
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await storage.stub.DeleteImage(
            storage_pb2.DeleteImageRequest(image_id=image.image_id),
            metadata=storage.auth("usr_bob"),
        )
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
    reply = await storage.stub.DeleteImage(
        storage_pb2.DeleteImageRequest(image_id=image.image_id), metadata=storage.auth()
    )
    assert reply.image_id == image.image_id
    assert storage.stored_files() == []
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await storage.stub.GetImage(
            storage_pb2.GetImageRequest(image_id=image.image_id), metadata=storage.auth()
        )
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("image_id", ["", "img_../x", "not an id"])
async def test_delete_image_refuses_a_bad_id(storage: Harness, image_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await storage.stub.DeleteImage(
            storage_pb2.DeleteImageRequest(image_id=image_id), metadata=storage.auth()
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image_id" in (refused.value.details() or "")


async def test_an_expired_image_is_410_gone_with_its_reason(
    storage: Harness, http: httpx.AsyncClient
) -> None:
    image = await storage.upload(image_bytes(seed=2), metadata=storage.auth(), kind="content")
    signed = await storage.stub.SignDownload(
        storage_pb2.SignDownloadRequest(image_id=image.image_id), metadata=storage.auth()
    )
    assert (await http.get(storage.local(signed.url))).status_code == 200
    # Its retention ends (as if stored long ago), and the sweep removes it.
    lifecycle = storage.service.lifecycle
    started = utc_now() - timedelta(hours=1)
    assert await lifecycle.store.begin_removal(image.image_id, EXPIRING, started)
    assert (await lifecycle.sweep()).finished == 1
    assert storage.stored_files() == []

    gone = await http.get(storage.local(signed.url))
    assert gone.status_code == 410
    body = gone.json()
    assert body["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "expired on" in body["message"]
    assert "upload it again" in body["message"]
    assert body["details"][0]["reason"] == "expired"
    with pytest.raises(grpc.aio.AioRpcError) as rpc:
        await storage.stub.GetImage(
            storage_pb2.GetImageRequest(image_id=image.image_id), metadata=storage.auth()
        )
    assert rpc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired on" in (rpc.value.details() or "")
