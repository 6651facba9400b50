"""The BlobStore contract, the same tests on the local filesystem and on a real MinIO (S3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gouache.blobs import BlobNotFound, BlobStore, InvalidBlobKey, LocalBlobStore
from tests.fixtures.minio import MinioServer


@dataclass
class Backend:
    """A store under test and how to find what a failed write may have left behind."""

    store: BlobStore
    leftovers: Callable[[], list[str]]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.minio)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A LocalBlobStore (leftovers: temp files), or an S3BlobStore on a fresh MinIO bucket
    (leftovers: multipart uploads neither completed nor aborted)."""
    if request.param == "local":
        local = LocalBlobStore(tmp_path / "blobs")
        yield Backend(local, lambda: [str(path) for path in local.temp_files()])
        return
    server: MinioServer = request.getfixturevalue("minio_server")
    bucket = server.make_bucket()
    s3 = server.store(bucket)
    try:
        yield Backend(s3, lambda: server.incomplete_uploads(bucket))
    finally:
        await s3.close()


def _pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_the_store_implements_the_interface(backend: Backend) -> None:
    assert isinstance(backend.store, BlobStore)


async def test_put_get_exists_delete(backend: Backend) -> None:
    store = backend.store
    assert not await store.exists("a/b.png")
    await store.put("a/b.png", b"hello", "image/png")
    assert await store.exists("a/b.png")
    assert await store.get("a/b.png") == b"hello"
    await store.put("a/b.png", b"replaced", "image/png")
    assert await store.get("a/b.png") == b"replaced"
    await store.delete("a/b.png")
    assert not await store.exists("a/b.png")
    await store.delete("a/b.png")
    with pytest.raises(BlobNotFound):
        await store.get("a/b.png")


async def test_put_from_an_async_iterator(backend: Backend) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            yield bytes([index]) * 1000

    await backend.store.put("streamed", chunks(), "application/octet-stream")
    assert await backend.store.get("streamed") == b"".join(bytes([i]) * 1000 for i in range(5))


async def test_open_streams_chunks_and_fails_early_for_missing_keys(backend: Backend) -> None:
    data = bytes(range(256)) * 100
    await backend.store.put("big", data, "application/octet-stream")
    chunks = [chunk async for chunk in await backend.store.open("big", chunk_bytes=4096)]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) == 4096
    with pytest.raises(BlobNotFound):
        await backend.store.open("missing")
    with pytest.raises(ValueError, match="chunk_bytes"):
        await backend.store.open("big", chunk_bytes=0)


async def test_an_open_reader_keeps_its_version(backend: Backend) -> None:
    store = backend.store
    await store.put("k", b"old" * 10, "text/plain")
    reader = await store.open("k", chunk_bytes=3)
    await store.put("k", b"new" * 10, "text/plain")
    assert b"".join([chunk async for chunk in reader]) == b"old" * 10


async def test_objects_larger_than_a_part_round_trip(backend: Backend) -> None:
    """11 MiB: three parts of a multipart upload on S3, streamed and from bytes."""
    data = _pattern(11 * 1024 * 1024 + 7)
    await backend.store.put("large/streamed", _chunks(data, 64 * 1024), "image/png")
    await backend.store.put("large/bytes", data, "image/png")
    for key in ("large/streamed", "large/bytes"):
        reader = await backend.store.open(key, chunk_bytes=1024 * 1024)
        assert b"".join([chunk async for chunk in reader]) == data
    assert backend.leftovers() == []


async def test_a_failed_write_leaves_nothing(backend: Backend) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("writer crashed")

    with pytest.raises(RuntimeError, match="writer crashed"):
        await backend.store.put("x/y", failing(), "text/plain")
    assert not await backend.store.exists("x/y")
    assert backend.leftovers() == []


async def test_a_write_failing_after_the_first_part_leaves_nothing(backend: Backend) -> None:
    """On S3 the first 5 MiB part is uploaded before the failure: the upload is aborted."""

    async def failing() -> AsyncIterator[bytes]:
        async for chunk in _chunks(_pattern(6 * 1024 * 1024), 256 * 1024):
            yield chunk
        yield _pattern(6 * 1024 * 1024)
        raise OSError("the client went away")

    with pytest.raises(OSError, match="the client went away"):
        await backend.store.put("x/large", failing(), "image/png")
    assert not await backend.store.exists("x/large")
    assert backend.leftovers() == []


async def test_a_failed_replacement_keeps_the_old_object(backend: Backend) -> None:
    await backend.store.put("x/y", b"complete", "text/plain")

    async def failing() -> AsyncIterator[bytes]:
        yield b"half"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await backend.store.put("x/y", failing(), "text/plain")
    assert await backend.store.get("x/y") == b"complete"
    assert backend.leftovers() == []


@pytest.mark.parametrize("sent", [5, 6 * 1024 * 1024], ids=["small", "after-a-part"])
async def test_a_cancelled_write_leaves_nothing(backend: Backend, sent: int) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        async for chunk in _chunks(_pattern(sent), 256 * 1024):
            yield chunk
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(backend.store.put("slow", slow(), "text/plain"))
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await backend.store.exists("slow")
    assert backend.leftovers() == []


async def test_concurrent_puts_and_reads(backend: Backend) -> None:
    payloads = {f"many/{i}": _pattern(1000 + i) for i in range(24)}
    await asyncio.gather(*(backend.store.put(k, v, "image/png") for k, v in payloads.items()))
    read = await asyncio.gather(*(backend.store.get(key) for key in payloads))
    assert read == list(payloads.values())


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        "a/",
        ".hidden",
        "a\\b",
        "a\x00b",
        "spaces are not allowed",
        "x" * 1025,
    ],
)
async def test_unsafe_keys_are_refused(backend: Backend, key: str) -> None:
    store = backend.store
    with pytest.raises(InvalidBlobKey):
        await store.put(key, b"x", "text/plain")
    with pytest.raises(InvalidBlobKey):
        await store.get(key)
    with pytest.raises(InvalidBlobKey):
        await store.open(key)
    with pytest.raises(InvalidBlobKey):
        await store.exists(key)
    with pytest.raises(InvalidBlobKey):
        await store.delete(key)
