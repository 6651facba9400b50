"""S3BlobStore against a real MinIO: buckets, content types, and what it says when MinIO is away."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gouache.blobs import BlobStoreMisconfigured, BlobUnavailable, S3BlobStore
from gouache.runtime.ports import free_port
from tests.fixtures.minio import MinioServer, running_minio_server

pytestmark = pytest.mark.minio

# Connection refused, retried twice with backoff: well under this.
FAST_FAILURE_S = 5.0


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[MinioServer]:
    """A MinIO server of this test's own, which it may stop and start."""
    with running_minio_server(tmp_path / "minio") as server:
        yield server


async def test_the_content_type_is_the_objects(
    minio_server: MinioServer, minio_bucket: str, s3_store: S3BlobStore
) -> None:
    await s3_store.put("typed/a.webp", b"RIFF....WEBP", "image/webp")
    stat = minio_server.client().stat_object(minio_bucket, "typed/a.webp")
    assert stat.content_type == "image/webp"
    assert stat.size == 12
    assert minio_server.object_names(minio_bucket) == ["typed/a.webp"]


async def test_a_missing_bucket_is_refused_or_created(minio_server: MinioServer) -> None:
    store = minio_server.store("gouache-not-there-yet")
    try:
        with pytest.raises(BlobStoreMisconfigured, match="'gouache-not-there-yet' does not exist"):
            await store.ensure_bucket()
        assert await store.ensure_bucket(create=True) is True
        assert await store.ensure_bucket(create=True) is False
        assert await store.ensure_bucket() is False
        await store.put("k", b"v", "text/plain")
        assert await store.get("k") == b"v"
    finally:
        await store.close()


async def test_wrong_credentials_are_unavailable_naming_the_endpoint(
    minio_server: MinioServer, minio_bucket: str
) -> None:
    store = S3BlobStore.connect(
        minio_server.endpoint,
        bucket=minio_bucket,
        access_key="nobody",
        secret_key="wrong-secret-key",
        secure=False,
    )
    try:
        with pytest.raises(BlobUnavailable) as caught:
            await store.ensure_bucket()
        assert minio_server.endpoint in caught.value.message
        assert "InvalidAccessKeyId" in caught.value.message
        with pytest.raises(BlobUnavailable, match="refused to store 'k'"):
            await store.put("k", b"v", "text/plain")
    finally:
        await store.close()


async def test_an_unreachable_endpoint_fails_fast_and_names_it() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    store = S3BlobStore.connect(
        endpoint, bucket="b-unreachable", access_key="a", secret_key="b", secure=False
    )
    try:
        for call in (
            store.ensure_bucket(),
            store.put("k", b"v", "text/plain"),
            store.get("k"),
            store.open("k"),
            store.exists("k"),
            store.delete("k"),
        ):
            started = time.monotonic()
            with pytest.raises(BlobUnavailable) as caught:
                await call
            assert time.monotonic() - started < FAST_FAILURE_S
            assert f"the object store at {endpoint} is unavailable" in caught.value.message
            assert "Connection refused" in caught.value.message
            assert caught.value.code.name == "UNAVAILABLE"
    finally:
        await store.close()


async def test_a_stopped_server_is_unavailable_and_a_restarted_one_serves_again(
    own_server: MinioServer,
) -> None:
    bucket = own_server.make_bucket()
    store = own_server.store(bucket)
    try:
        await store.put("before", b"kept", "text/plain")
        own_server.stop()
        with pytest.raises(BlobUnavailable, match=own_server.endpoint):
            await store.put("during", b"lost", "text/plain")
        with pytest.raises(BlobUnavailable, match=own_server.endpoint):
            await store.get("before")
        own_server.start()
        assert await store.get("before") == b"kept"
        await store.put("after", b"stored", "text/plain")
        assert own_server.object_names(bucket) == ["after", "before"]
    finally:
        await store.close()


async def test_a_server_killed_during_a_read_ends_it_with_unavailable(
    own_server: MinioServer,
) -> None:
    bucket = own_server.make_bucket()
    store = own_server.store(bucket)
    data = bytes(range(256)) * (64 * 1024 * 4)  # 64 MiB: more than the sockets buffer
    try:
        await store.put("large", data, "application/octet-stream")
        reader = await store.open("large", chunk_bytes=1024 * 1024)
        first = len(await anext(reader))
        own_server.kill()
        with pytest.raises(BlobUnavailable, match=own_server.endpoint):
            await _drain(reader)
        assert first < len(data)
    finally:
        await store.close()


async def _drain(chunks: AsyncIterator[bytes]) -> int:
    return sum([len(chunk) async for chunk in chunks])
