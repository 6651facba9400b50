"""A BlobStore on the local filesystem, for the embedded mode (`gouache up`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from gouache.blobs.base import DEFAULT_CHUNK_BYTES, BlobNotFound, validate_key

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


class LocalBlobStore:
    """Objects as files under `root`, one file per key; file I/O runs in worker threads.

    `put` writes a hidden temporary file in the final directory, fsyncs it, renames it
    over the final name and fsyncs the directory, so a crash leaves either the old
    object, the new one, or a stray temporary file (see `remove_stale_temp_files`),
    never a half-written object under the key. The filesystem keeps no content type:
    callers record it next to the key (the storage service keeps it in its database).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        """The file that holds key (after checking the key)."""
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put(self, key: str, data: bytes | AsyncIterator[bytes], content_type: str) -> None:
        """Stores data atomically under key (see the class docstring)."""
        path = self.path_for(key)
        handle, temp_path = await asyncio.to_thread(_create_temp, path)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                await asyncio.to_thread(handle.write, data)
            else:
                async for chunk in data:
                    await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(_commit, handle, temp_path, path)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_discard, handle, temp_path))
            raise

    async def get(self, key: str) -> bytes:
        """Returns the whole object; raises BlobNotFound."""
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise BlobNotFound(key) from exc

    async def open(
        self, key: str, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> AsyncIterator[bytes]:
        """Opens the file now (BlobNotFound is raised here) and returns its chunks.

        The open handle keeps reading the same object even if it is replaced or deleted
        meanwhile, so a download never mixes two versions.
        """
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(_open_for_read, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise BlobNotFound(key) from exc
        return _chunks(handle, chunk_bytes)

    async def exists(self, key: str) -> bool:
        """Says whether an object is stored under key."""
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        """Removes the object; a missing key is not an error."""
        path = self.path_for(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Deletes temporary files a crashed writer left behind; returns how many.

        Only files older than `older_than_s` are removed, so writes in progress in other
        processes sharing the root are left alone.
        """
        return await asyncio.to_thread(_remove_stale, self.root, older_than_s)

    def temp_files(self) -> list[Path]:
        """Temporary files currently under the root (for diagnostics and tests)."""
        return list(_temp_files(self.root))


def _create_temp(path: Path) -> tuple[BinaryIO, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    return os.fdopen(fd, "wb"), Path(name)


def _commit(handle: BinaryIO, temp_path: Path, path: Path) -> None:
    with handle:
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp_path, path)
    _fsync_directory(path.parent)


def _discard(handle: BinaryIO, temp_path: Path) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    temp_path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Makes the rename durable; some platforms cannot open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_for_read(path: Path) -> BinaryIO:
    if not path.is_file():
        raise FileNotFoundError(path)
    return path.open("rb")


async def _chunks(handle: BinaryIO, chunk_bytes: int) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await asyncio.to_thread(handle.read, chunk_bytes)
            if not chunk:
                return
            yield chunk
    finally:
        handle.close()


def _temp_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                yield Path(directory, name)


def _remove_stale(root: Path, older_than_s: float) -> int:
    cutoff = time.time() - older_than_s
    removed = 0
    for path in _temp_files(root):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.info("removed stale temporary files", extra={"count": removed, "root": str(root)})
    return removed
