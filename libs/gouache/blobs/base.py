"""The object-store interface every backend implements, S3-shaped, and its key rules."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from gouache.runtime.errors import Unavailable

DEFAULT_CHUNK_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 1024

# A key is one or more "/"-separated segments of letters, digits, ".", "_", "=", "+" and "-".
# A segment may not start with "." so that "." and ".." are impossible and no key can clash
# with the hidden temporary files a backend writes next to the final object.
_SEGMENT = re.compile(r"[A-Za-z0-9_=+\-][A-Za-z0-9._=+\-]*")


class BlobError(Exception):
    """Base class of object-store errors."""


class InvalidBlobKey(BlobError, ValueError):
    """A key that could escape the store's root or that no backend can hold."""


class BlobNotFound(BlobError, KeyError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no object stored under {self.key!r}"


class BlobUnavailable(BlobError, Unavailable):
    """The object store cannot be reached or refuses the service's requests.

    It is also the runtime's `Unavailable`, so a gRPC call or a file download that needs
    the store answers UNAVAILABLE with this message (which names the endpoint) instead of
    INTERNAL: the caller may retry, and the operator knows where to look.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="object_store_unavailable")


class BlobStoreMisconfigured(BlobError):
    """The store is reachable but cannot be used as configured (e.g. its bucket is missing)."""


def validate_key(key: str) -> str:
    """Returns key unchanged if it is a safe relative object key, else raises InvalidBlobKey.

    Refused: empty keys, keys longer than 1024 characters, absolute paths, backslashes,
    empty segments ("a//b", trailing "/"), segments starting with "." (so ".." and "."),
    and any character outside letters, digits and "._=+-".
    """
    if not key:
        raise InvalidBlobKey("object key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidBlobKey(f"object key is longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidBlobKey(f"object key must be relative, got {key!r}")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidBlobKey(
                f"object key {key!r} has an invalid segment {segment!r}: use letters, digits "
                "and '._=+-', not starting with '.'"
            )
    return key


@runtime_checkable
class BlobStore(Protocol):
    """Stores immutable objects by key, like S3: whole-object writes, streamed reads.

    `put` is atomic: a reader sees either no object or the complete new one, never a
    partial write, even when the writer crashes. Keys are checked with `validate_key`.
    """

    async def put(self, key: str, data: bytes | AsyncIterator[bytes], content_type: str) -> None:
        """Stores data (bytes, or chunks from an async iterator) under key, replacing any object."""
        ...

    async def get(self, key: str) -> bytes:
        """Returns the whole object; raises BlobNotFound."""
        ...

    async def open(
        self, key: str, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> AsyncIterator[bytes]:
        """Opens the object for a streamed read; raises BlobNotFound here, before any chunk.

        Iterate the result to the end, or `aclose()` it, to release the underlying handle.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Says whether an object is stored under key."""
        ...

    async def delete(self, key: str) -> None:
        """Removes the object; deleting a missing key is not an error (as in S3)."""
        ...
