"""Object storage: the S3-shaped BlobStore interface, a local-filesystem and an S3/MinIO backend."""

from gouache.blobs.base import (
    DEFAULT_CHUNK_BYTES,
    BlobError,
    BlobNotFound,
    BlobStore,
    BlobStoreMisconfigured,
    BlobUnavailable,
    InvalidBlobKey,
    validate_key,
)
from gouache.blobs.local import LocalBlobStore
from gouache.blobs.s3 import S3BlobStore

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreMisconfigured",
    "BlobUnavailable",
    "InvalidBlobKey",
    "LocalBlobStore",
    "S3BlobStore",
    "validate_key",
]
