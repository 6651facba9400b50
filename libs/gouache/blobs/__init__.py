"""Object storage: the S3-shaped BlobStore interface and its local-filesystem backend."""

from gouache.blobs.base import (
    DEFAULT_CHUNK_BYTES,
    BlobError,
    BlobNotFound,
    BlobStore,
    InvalidBlobKey,
    validate_key,
)
from gouache.blobs.local import LocalBlobStore

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "InvalidBlobKey",
    "LocalBlobStore",
    "validate_key",
]
