"""Retention and deletion of images: when an image expires, how it is removed, the sweep.

Removal order, so that nothing dangles and a crash midway is repaired: first the row is
marked (DELETING or EXPIRING, records.py) in its own transaction, which hides it from every
read; then the blob is deleted (idempotent, as S3's DELETE); then the row is dropped
(DELETING, with its style entry) or stripped into an EXPIRED tombstone. A crash after the
mark leaves a hidden row whose blob may or may not be there; the sweep finds marks older
than `stall_s` and runs the last two steps again. The opposite order (row first) could leave
a blob no row names, which no sweep would find; blob first without a mark would let a
download race into a missing blob.

The tombstone lets a download, GetImage or a job's result say "expired on DATE" (410 over
HTTP, FAILED_PRECONDITION with reason `expired` over gRPC) instead of a bare 404, for
`tombstone_days`; then the sweep forgets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from gouache.blobs import BlobStore
from gouache.db import utc_now
from gouache.runtime.context import Principal
from gouache.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.storage.domain.rules import validate_image_id, validate_owner_id
from services.storage.records import (
    DELETING,
    EXPIRED,
    EXPIRING,
    RESULT,
    ImageRecord,
)

logger = logging.getLogger(__name__)

EXPIRED_REASON = "expired"


class LifecycleStore(Protocol):
    """What removal needs from the database (store.StorageStore implements it)."""

    async def get_image(self, image_id: str) -> ImageRecord | None: ...

    async def begin_removal(
        self, image_id: str, removal: str, at: datetime, *, only_if_expired: bool = False
    ) -> bool: ...

    async def finish_removal(self, image: ImageRecord) -> None: ...

    async def images_to_expire(self, now: datetime, limit: int) -> list[str]: ...

    async def unfinished_removals(
        self, started_before: datetime, limit: int
    ) -> list[ImageRecord]: ...

    async def forget_tombstones(self, expired_before: datetime, limit: int) -> int: ...

    async def owner_image_ids(self, owner_id: str, limit: int) -> list[str]: ...

    async def delete_reservations(self, owner_id: str) -> int: ...


@dataclass(frozen=True)
class RetentionPolicy:
    """How long uploads and results are kept: `days` (0: forever), or the plan's own."""

    days: int = 30
    per_plan: Mapping[str, int] = field(default_factory=dict)

    def expires_at(self, created_at: datetime, *, plan: str, curated: bool) -> datetime | None:
        """When an image stored at `created_at` by a user of `plan` ("" for a service's
        result: the default) expires; None when it is kept (curated, or 0 days)."""
        if curated:
            return None
        days = self.per_plan.get(plan, self.days) if plan else self.days
        return created_at + timedelta(days=days) if days > 0 else None


def gone(image: ImageRecord) -> FailedPrecondition:
    """The error for an image whose retention ended (HTTP 410 at the file server)."""
    when = image.expires_at or image.removed_at
    day = when.date().isoformat() if when else "an earlier date"
    again = "run the job again" if image.kind == RESULT else "upload it again"
    return FailedPrecondition(
        f"image {image.image_id} expired on {day}: its retention period ended and its bytes "
        f"were removed; {again}",
        reason=EXPIRED_REASON,
        metadata={"expired_at": when.isoformat()} if when else {},
    )


def present(image: ImageRecord | None, image_id: str) -> ImageRecord:
    """The image if it is there; NOT_FOUND when it is gone or being deleted, `gone()` when
    it expired."""
    if image is None or image.removal == DELETING:
        raise NotFound(f"image {image_id} not found")
    if image.removal in (EXPIRING, EXPIRED):
        raise gone(image)
    return image


@dataclass(frozen=True)
class SweepReport:
    expired: int = 0
    finished: int = 0
    forgotten: int = 0


class ImageLifecycle:
    """Deletes images on request and expires them on schedule, blob and row together."""

    def __init__(
        self,
        store: LifecycleStore,
        blobs: BlobStore,
        *,
        batch_size: int = 100,
        stall_s: float = 300.0,
        tombstone_days: int = 30,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.batch_size = batch_size
        self.stall = timedelta(seconds=stall_s)
        self.tombstone = timedelta(days=tombstone_days)
        self._clock = clock

    async def delete_image(self, principal: Principal, image_id: str) -> ImageRecord:
        """DeleteImage: the owner's content or style image (an admin: anyone's; a service:
        any, results included). NOT_FOUND for others' images, as GetImage."""
        validate_image_id(image_id)
        image = await self.store.get_image(image_id)
        if image is None or image.removal == DELETING:
            raise NotFound(f"image {image_id} not found")
        privileged = principal.is_admin or principal.is_service
        if image.curated and not privileged:
            raise PermissionDenied(f"image {image_id} is a curated style; only admins delete those")
        if not (image.owner_id == principal.project_id or privileged):
            raise NotFound(f"image {image_id} not found")
        if image.kind == RESULT and not principal.is_service:
            raise FailedPrecondition(
                f"image {image_id} is a job's result: delete the job (DELETE /v1/jobs/<job_id>), "
                "which deletes its result too",
                reason="result_of_job",
            )
        await self.remove(image_id, DELETING)
        logger.info(
            "image deleted",
            extra={"image_id": image_id, "owner_id": image.owner_id, "by": principal.user_id},
        )
        return image

    async def remove(self, image_id: str, removal: str, *, only_if_expired: bool = False) -> bool:
        """Marks, deletes the blob, then drops or tombstones the row; False if not marked."""
        if not await self.store.begin_removal(
            image_id, removal, self._clock(), only_if_expired=only_if_expired
        ):
            return False
        image = await self.store.get_image(image_id)
        if image is not None:
            await self._finish(image)
        return True

    async def _finish(self, image: ImageRecord) -> None:
        await self.blobs.delete(image.blob_key)
        await self.store.finish_removal(image)

    async def erase_owner(self, owner_id: str, limit: int) -> tuple[int, bool]:
        """Removes up to `limit` of an owner's images (any kind and state) and all their
        reservations; (how many, whether nothing of the owner is left)."""
        if not owner_id:
            raise InvalidArgument(
                "owner_id is required: the user whose images to erase", field="owner_id"
            )
        validate_owner_id(owner_id)
        await self.store.delete_reservations(owner_id)
        removed = 0
        for image_id in await self.store.owner_image_ids(owner_id, limit):
            if not await self.remove(image_id, DELETING):
                # Marked DELETING by an earlier call that did not finish: finish it now.
                image = await self.store.get_image(image_id)
                if image is not None:
                    await self._finish(image)
            removed += 1
        done = not await self.store.owner_image_ids(owner_id, 1)
        logger.info("owner erased", extra={"owner_id": owner_id, "removed": removed, "done": done})
        return removed, done

    async def sweep(self) -> SweepReport:
        """One bounded pass: at most `batch_size` images of each kind of work."""
        now = self._clock()
        expired = 0
        for image_id in await self.store.images_to_expire(now, self.batch_size):
            if await self.remove(image_id, EXPIRING, only_if_expired=True):
                expired += 1
        stalled = await self.store.unfinished_removals(now - self.stall, self.batch_size)
        for image in stalled:
            await self._finish(image)
        forgotten = await self.store.forget_tombstones(now - self.tombstone, self.batch_size)
        report = SweepReport(expired=expired, finished=len(stalled), forgotten=forgotten)
        if expired or stalled or forgotten:
            logger.info(
                "retention sweep",
                extra={"expired": expired, "finished": len(stalled), "forgotten": forgotten},
            )
        return report
