"""The object store the settings choose (local files or an S3/MinIO bucket), ready to use."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gouache.blobs import BlobStore, BlobStoreMisconfigured, LocalBlobStore, S3BlobStore
from services.storage.settings import ENV_PREFIX, StorageSettings

logger = logging.getLogger(__name__)

STALE_TEMP_FILE_AGE_S = 3600.0


@dataclass
class ConfiguredBlobs:
    """A BlobStore with what starting and stopping it takes for its backend."""

    store: BlobStore
    settings: StorageSettings

    async def prepare(self) -> None:
        """Local: sweeps what crashed writers left. S3: checks (or creates) the bucket.

        Raises BlobStoreMisconfigured (a missing bucket, saying how to fix it) or
        BlobUnavailable (the endpoint cannot be reached or refuses the credentials).
        """
        if isinstance(self.store, LocalBlobStore):
            await self.store.remove_stale_temp_files(STALE_TEMP_FILE_AGE_S)
            return
        if isinstance(self.store, S3BlobStore):
            try:
                created = await self.store.ensure_bucket(
                    create=self.settings.s3_create_bucket, region=self.settings.s3_region
                )
            except BlobStoreMisconfigured as exc:
                raise BlobStoreMisconfigured(
                    f"{exc}: create it, or set {ENV_PREFIX}S3_CREATE_BUCKET=true to let "
                    "storage create it"
                ) from exc
            logger.info(
                "object store ready",
                extra={
                    "endpoint": self.store.endpoint,
                    "bucket": self.store.bucket,
                    "bucket_created": created,
                },
            )

    async def close(self) -> None:
        """Releases the S3 store's threads and connections (nothing to do for files)."""
        if isinstance(self.store, S3BlobStore):
            await self.store.close()


def open_blobs(settings: StorageSettings) -> ConfiguredBlobs:
    """The store `blob_backend` names; nothing is contacted until `prepare` or a call."""
    if settings.blob_backend == "s3":
        store: BlobStore = S3BlobStore.connect(
            settings.s3_endpoint,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            timeout_s=settings.s3_timeout_s,
            max_workers=settings.s3_max_workers,
        )
    else:
        store = LocalBlobStore(settings.resolved_blob_root())
    return ConfiguredBlobs(store, settings)
