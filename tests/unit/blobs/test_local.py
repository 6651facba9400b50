"""LocalBlobStore specifics and key validation; the BlobStore contract itself is tested on
every backend in tests/integration/blobs/test_contract.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gouache.blobs import BlobStore, InvalidBlobKey, LocalBlobStore, validate_key


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_local_store_implements_the_interface(store: LocalBlobStore) -> None:
    assert isinstance(store, BlobStore)


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
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        validate_key(key)


def test_ordinary_keys_pass() -> None:
    for key in ("images/AB/img_01-abc.png", "a", "a.b_c-d=e+f/g"):
        assert validate_key(key) == key
