"""The storage service on an S3 bucket of a real MinIO: uploads, validation, downloads, faults."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from gouache.blobs import BlobStoreMisconfigured, S3BlobStore
from gouache.contracts.storage.v1 import storage_pb2
from tests.fixtures.minio import MinioServer, running_minio_server
from tests.unit.storage.support import Harness, image_bytes, start_harness, stop_harness

pytestmark = pytest.mark.minio

UNAVAILABLE = 14


async def _on_bucket(tmp_path: Path, server: MinioServer, bucket: str, **extra: str) -> Harness:
    return await start_harness(tmp_path, **server.env(bucket), **extra)


@pytest.fixture
async def storage(
    tmp_path: Path, minio_server: MinioServer, minio_bucket: str
) -> AsyncIterator[Harness]:
    harness = await _on_bucket(tmp_path, minio_server, minio_bucket)
    try:
        yield harness
    finally:
        await stop_harness(harness)


async def _sign(
    storage: Harness, content_type: str = "image/png"
) -> storage_pb2.SignUploadResponse:
    return await storage.stub.SignUpload(
        storage_pb2.SignUploadRequest(filename="cat.png", content_type=content_type, kind="style"),
        metadata=storage.auth(),
        timeout=5,
    )


async def test_upload_validate_download_through_the_s3_store(
    storage: Harness, minio_server: MinioServer, minio_bucket: str
) -> None:
    assert isinstance(storage.service.library.blobs, S3BlobStore)
    data = image_bytes("png", size=(48, 40), seed=7)
    ticket = await _sign(storage)
    async with httpx.AsyncClient(timeout=10) as http:
        stored = await http.put(
            storage.local(ticket.upload_url), content=data, headers={"Content-Type": "image/png"}
        )
        assert stored.status_code == 201, stored.text
        body = stored.json()
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert (body["width"], body["height"]) == (48, 40)

        # One object in the bucket: the image's blob, typed as the image.
        image = await storage.service.library.store.get_image(ticket.image_id)
        assert image is not None
        assert minio_server.object_names(minio_bucket) == [image.blob_key]
        stat = minio_server.client().stat_object(minio_bucket, image.blob_key)
        assert stat.content_type == "image/png"
        assert stat.size == len(data)

        # Back out through gRPC, the bearer GET and a signed GET of the file server.
        assert await storage.download(ticket.image_id, storage.auth()) == data
        bearer = await http.get(
            storage.local(ticket.file_url), headers={"Authorization": f"Bearer {storage.token()}"}
        )
        assert bearer.status_code == 200
        assert bearer.content == data
        signed = await storage.stub.SignDownload(
            storage_pb2.SignDownloadRequest(image_id=ticket.image_id, ttl_seconds=60),
            metadata=storage.auth(),
            timeout=5,
        )
        download = await http.get(storage.local(signed.url))
        assert download.status_code == 200
        assert download.content == data
        assert download.headers["content-type"] == "image/png"


async def test_a_large_upload_goes_through_multipart_and_back(
    storage: Harness, minio_server: MinioServer, minio_bucket: str
) -> None:
    """An 8 MiB-plus PNG is stored as a multipart upload (parts of 8 MiB) and read back whole."""
    data = image_bytes("png", size=(2048, 1536), seed=3)
    blobs = storage.service.library.blobs
    assert isinstance(blobs, S3BlobStore)
    assert len(data) > blobs.part_bytes
    image = await storage.upload(data, metadata=storage.auth(), chunk_bytes=1024 * 1024)
    assert await storage.download(image.image_id, storage.auth()) == data
    assert minio_server.incomplete_uploads(minio_bucket) == []
    assert len(minio_server.object_names(minio_bucket)) == 1


@pytest.mark.parametrize(
    "data",
    [image_bytes("png")[:-40], b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, b""],
    ids=["truncated", "corrupt", "empty"],
)
async def test_a_corrupt_upload_leaves_nothing_in_the_bucket(
    storage: Harness, minio_server: MinioServer, minio_bucket: str, data: bytes
) -> None:
    ticket = await _sign(storage)
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.put(
            storage.local(ticket.upload_url), content=data, headers={"Content-Type": "image/png"}
        )
    assert refused.status_code == 400, refused.text
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await storage.upload(data, metadata=storage.auth())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await storage.service.library.store.get_image(ticket.image_id) is None
    assert minio_server.object_names(minio_bucket) == []
    assert minio_server.incomplete_uploads(minio_bucket) == []


async def test_a_missing_bucket_stops_the_start_unless_it_may_be_created(
    tmp_path: Path, minio_server: MinioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.storage.blobs")
    with pytest.raises(BlobStoreMisconfigured, match="GOUACHE_STORAGE_S3_CREATE_BUCKET=true"):
        await _on_bucket(tmp_path / "refused", minio_server, "gouache-missing")
    harness = await _on_bucket(
        tmp_path / "created", minio_server, "gouache-created", s3_create_bucket="true"
    )
    try:
        image = await harness.upload(image_bytes(seed=5), metadata=harness.auth())
        record = await harness.service.library.store.get_image(image.image_id)
        assert record is not None
        assert minio_server.object_names("gouache-created") == [record.blob_key]
        ready = [r for r in caplog.records if r.getMessage() == "object store ready"]
        assert [r.__dict__["bucket_created"] for r in ready] == [True]
    finally:
        await stop_harness(harness)


async def test_minio_stopped_is_unavailable_and_storage_recovers_after_restart(
    tmp_path: Path,
) -> None:
    with running_minio_server(tmp_path / "minio") as server:
        bucket = server.make_bucket()
        storage = await _on_bucket(tmp_path / "storage", server, bucket)
        try:
            kept = await storage.upload(image_bytes(seed=1), metadata=storage.auth())
            server.stop()

            with pytest.raises(grpc.aio.AioRpcError) as upload:
                await storage.upload(image_bytes(seed=2), metadata=storage.auth())
            assert upload.value.code() == grpc.StatusCode.UNAVAILABLE
            assert f"the object store at {server.endpoint} is unavailable" in str(
                upload.value.details()
            )
            with pytest.raises(grpc.aio.AioRpcError) as download:
                await storage.download(kept.image_id, storage.auth())
            assert download.value.code() == grpc.StatusCode.UNAVAILABLE
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(
                    f"{storage.files_url}/v1/files/{kept.image_id}",
                    headers={"Authorization": f"Bearer {storage.token()}"},
                )
            assert response.status_code == 503, response.text
            assert response.json()["code"] == UNAVAILABLE
            assert server.endpoint in response.json()["message"]

            server.start()
            assert await storage.download(kept.image_id, storage.auth()) == image_bytes(seed=1)
            again = await storage.upload(image_bytes(seed=2), metadata=storage.auth())
            assert await storage.download(again.image_id, storage.auth()) == image_bytes(seed=2)
            assert len(server.object_names(bucket)) == 2
        finally:
            await stop_harness(storage)
