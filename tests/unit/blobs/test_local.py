"""LocalBlobStore: round trips, streamed reads, atomic writes and key validation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gouache.blobs import BlobNotFound, BlobStore, InvalidBlobKey, LocalBlobStore, validate_key


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_local_store_implements_the_interface(store: LocalBlobStore) -> None:
    assert isinstance(store, BlobStore)


async def test_put_get_exists_delete(store: LocalBlobStore) -> None:
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


async def test_put_from_an_async_iterator(store: LocalBlobStore) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            yield bytes([index]) * 1000

    await store.put("streamed", chunks(), "application/octet-stream")
    assert await store.get("streamed") == b"".join(bytes([i]) * 1000 for i in range(5))


async def test_open_streams_chunks_and_fails_early_for_missing_keys(store: LocalBlobStore) -> None:
    data = bytes(range(256)) * 100
    await store.put("big", data, "application/octet-stream")
    chunks = [chunk async for chunk in await store.open("big", chunk_bytes=4096)]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) == 4096
    with pytest.raises(BlobNotFound):
        await store.open("missing")


async def test_an_open_reader_keeps_its_version(store: LocalBlobStore) -> None:
    await store.put("k", b"old" * 10, "text/plain")
    reader = await store.open("k", chunk_bytes=3)
    await store.put("k", b"new" * 10, "text/plain")
    assert b"".join([chunk async for chunk in reader]) == b"old" * 10


async def test_a_failed_write_leaves_neither_object_nor_temp_file(store: LocalBlobStore) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("writer crashed")

    with pytest.raises(RuntimeError, match="writer crashed"):
        await store.put("x/y", failing(), "text/plain")
    assert not await store.exists("x/y")
    assert store.temp_files() == []


async def test_a_failed_replacement_keeps_the_old_object(store: LocalBlobStore) -> None:
    await store.put("x/y", b"complete", "text/plain")

    async def failing() -> AsyncIterator[bytes]:
        yield b"half"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.put("x/y", failing(), "text/plain")
    assert await store.get("x/y") == b"complete"
    assert store.temp_files() == []


async def test_a_cancelled_write_leaves_no_temp_file(store: LocalBlobStore) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"first"
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(store.put("slow", slow(), "text/plain"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists("slow")
    assert store.temp_files() == []


async def test_stale_temp_files_are_swept(store: LocalBlobStore, tmp_path: Path) -> None:
    await store.put("d/kept", b"x", "text/plain")
    stale = tmp_path / "blobs" / "d" / ".kept.abc.tmp"
    stale.write_bytes(b"left by a crash")
    assert await store.remove_stale_temp_files(older_than_s=3600) == 0
    assert await store.remove_stale_temp_files(older_than_s=-1) == 1
    assert not stale.exists()
    assert await store.get("d/kept") == b"x"


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
async def test_unsafe_keys_are_refused(store: LocalBlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        validate_key(key)
    with pytest.raises(InvalidBlobKey):
        await store.put(key, b"x", "text/plain")
    with pytest.raises(InvalidBlobKey):
        await store.get(key)


def test_ordinary_keys_pass() -> None:
    for key in ("images/AB/img_01-abc.png", "a", "a.b_c-d=e+f/g"):
        assert validate_key(key) == key
