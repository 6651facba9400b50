"""The ImageLibrary: everything the storage service does, independent of gRPC and HTTP."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from gouache.blobs import BlobStore
from gouache.db import new_id, utc_now
from gouache.imaging.codec import ImageLimits
from gouache.imaging.errors import ImageRejected
from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.storage.domain.lifecycle import RetentionPolicy
from services.storage.domain.model import (
    CatalogEntry,
    ImageStore,
    UploadHeader,
    UploadTicket,
)
from services.storage.domain.reading import ImageReads
from services.storage.domain.rules import (
    blob_key,
    normalize_content_type,
    read_capped,
    rejected_image,
    title_from_filename,
    validate_filename,
    validate_image_id,
    validate_kind,
    validate_metadata_json,
    validate_owner_id,
)
from services.storage.domain.screening import ContentSafety, Screening, unsafe_content
from services.storage.records import (
    RESULT,
    STYLE,
    SYSTEM_OWNER,
    ImageRecord,
    Reservation,
    StyleRecord,
    StyleView,
)
from services.storage.urls import UrlSigner

logger = logging.getLogger(__name__)

# (owner id, image id, score) of an upload the content-safety filter refused.
RefusalHook = Callable[[str, str, float | None], Awaitable[None]]


class ImageLibrary(ImageReads):
    """Everything the storage service does, independent of gRPC and HTTP.

    Uploads, storing and housekeeping live here; the reads (records, bytes, signed
    downloads, resolving URLs, style listings) in reading.py.
    """

    def __init__(
        self,
        store: ImageStore,
        blobs: BlobStore,
        signer: UrlSigner,
        *,
        limits: ImageLimits,
        upload_ttl: timedelta,
        decode_concurrency: int = 2,
        safety: ContentSafety | None = None,
        retention: RetentionPolicy | None = None,
        on_refused: RefusalHook | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.signer = signer
        self.limits = limits
        self.upload_ttl = upload_ttl
        self._screening = Screening(limits, concurrency=decode_concurrency, safety=safety)
        self.retention = retention or RetentionPolicy()
        self._on_refused = on_refused
        self._clock = clock

    def file_url(self, image_id: str) -> str:
        """The URL that names an image in job requests."""
        return self.signer.file_url(image_id)

    # --- uploads ------------------------------------------------------------------------

    async def sign_upload(
        self, principal: Principal, *, filename: str, content_type: str, kind: str
    ) -> UploadTicket:
        """Reserves an image id for the caller and signs a URL to PUT its bytes to."""
        filename = validate_filename(filename)
        content_type = normalize_content_type(content_type)
        kind = validate_kind(kind, allow_result=False)
        image_id = new_id("img")
        now = self._clock()
        signed = self.signer.sign("PUT", image_id, now + self.upload_ttl)
        await self.store.add_reservation(
            Reservation(
                image_id=image_id,
                owner_id=principal.project_id,
                kind=kind,
                content_type=content_type,
                filename=filename,
                expires_at=signed.expires_at,
                created_at=now,
                plan=principal.plan,
            )
        )
        logger.info(
            "upload signed",
            extra={
                "image_id": image_id,
                "owner_id": principal.project_id,
                "by": principal.user_id,
                "kind": kind,
            },
        )
        return UploadTicket(
            image_id=image_id,
            upload_url=signed.url,
            file_url=self.file_url(image_id),
            expires_at=signed.expires_at,
        )

    async def check_signed_upload(
        self, image_id: str, *, expires: str | None, sig: str | None, content_type: str
    ) -> Reservation:
        """Everything a signed PUT must pass before its body is read."""
        self.signer.verify("PUT", image_id, expires, sig, now=self._clock())
        reservation = await self.store.get_reservation(image_id)
        if reservation is None:
            raise NotFound(f"upload {image_id} not found; request a new upload URL with SignUpload")
        if await self.store.get_image(image_id) is not None:
            raise _already_uploaded(image_id)
        declared = content_type.split(";", 1)[0].strip().lower()
        if declared != reservation.content_type:
            raise InvalidArgument(
                f"Content-Type must be {reservation.content_type}, as requested from SignUpload; "
                f"got {content_type.strip() or 'none'!r}",
                field="content_type",
                reason="content_type_mismatch",
            )
        return reservation

    async def complete_signed_upload(self, reservation: Reservation, data: bytes) -> ImageRecord:
        """Validates and stores the body of a signed PUT: one image per reservation."""
        image, created = await self._store_image(
            image_id=reservation.image_id,
            owner_id=reservation.owner_id,
            kind=reservation.kind,
            data=data,
            declared_content_type=reservation.content_type,
            filename=reservation.filename,
            metadata_json="",
            plan=reservation.plan,
        )
        if not created:
            raise _already_uploaded(reservation.image_id)
        return image

    async def upload(
        self, principal: Principal, header: UploadHeader, chunks: AsyncIterator[bytes]
    ) -> ImageRecord:
        """Stores a streamed upload (UploadImage); the header is checked before any chunk.

        Services may name the image id and owner and store "result" images; the same id
        with the same bytes returns the stored image, so a retried worker stores one image.
        """
        kind = validate_kind(header.kind, allow_result=principal.is_service)
        if principal.is_service:
            owner_id = validate_owner_id(header.owner_id)
            image_id = validate_image_id(header.image_id) if header.image_id else ""
        elif header.image_id or header.owner_id:
            raise PermissionDenied(
                "only services may choose image_id or owner_id; leave them empty",
                field="image_id" if header.image_id else "owner_id",
            )
        else:
            owner_id, image_id = principal.project_id, ""
        filename = validate_filename(header.filename) if header.filename else ""
        declared = normalize_content_type(header.content_type) if header.content_type else None
        metadata_json = validate_metadata_json(header.metadata_json)
        data = await read_capped(chunks, self.limits.max_bytes)
        if image_id:
            existing = await self._existing_for_retry(image_id, owner_id, kind, data)
            if existing is not None:
                return existing
        image, created = await self._store_image(
            image_id=image_id or new_id("img"),
            owner_id=owner_id,
            kind=kind,
            data=data,
            declared_content_type=declared,
            filename=filename,
            metadata_json=metadata_json,
            # A worker's result is bytes our own encoder wrote (tiling, authenticated as a
            # service): its header is checked, its pixels are not decoded again.
            trusted=principal.is_service and kind == RESULT,
            plan="" if principal.is_service else principal.plan,
        )
        if not created:
            return _same_image_or_conflict(image, owner_id, kind, hashlib.sha256(data).hexdigest())
        return image

    async def _existing_for_retry(
        self, image_id: str, owner_id: str, kind: str, data: bytes
    ) -> ImageRecord | None:
        existing = await self.store.get_image(image_id)
        if existing is not None:
            return _same_image_or_conflict(
                existing, owner_id, kind, hashlib.sha256(data).hexdigest()
            )
        if await self.store.get_reservation(image_id) is not None:
            raise AlreadyExists(
                f"image id {image_id} is reserved by a signed upload; store under a new id"
            )
        return None

    async def _store_image(
        self,
        *,
        image_id: str,
        owner_id: str,
        kind: str,
        data: bytes,
        declared_content_type: str | None,
        filename: str,
        metadata_json: str,
        catalog: CatalogEntry | None = None,
        trusted: bool = False,
        plan: str = "",
    ) -> tuple[ImageRecord, bool]:
        """Validates, writes the blob, then the row; (image, False) if the id was taken.

        Nothing is written for a rejected image, nor for one the content-safety filter
        refuses (the curated catalog, which an operator chose, is scored but not refused).
        When the row cannot be inserted because the id (or, for the catalog, the sha256) is
        taken, the blob just written is deleted unless it is the very object the existing
        row names. `trusted` bytes (a service's own result) get the header checks only;
        everything else is decoded in full and scored.
        """
        try:
            screened = await self._screening.screen(
                data, declared_content_type=declared_content_type, trusted=trusted
            )
        except ImageRejected as exc:
            logger.info(
                "image rejected",
                extra={"image_id": image_id, "owner_id": owner_id, "reason": exc.reason},
            )
            raise rejected_image(exc) from exc
        if self._screening.refuses(screened):
            self._log_refusal(
                image_id, owner_id, kind, screened.nsfw_score, curated=catalog is not None
            )
            if catalog is None:
                if self._on_refused is not None:
                    await self._on_refused(owner_id, image_id, screened.nsfw_score)
                raise unsafe_content()
        decoded = screened.header
        now = self._clock()
        key = blob_key(image_id, decoded.sha256, decoded.format)
        image = ImageRecord(
            image_id=image_id,
            owner_id=owner_id,
            kind=kind,
            content_type=decoded.content_type,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            sha256=decoded.sha256,
            blob_key=key,
            created_at=now,
            filename=filename,
            metadata_json=metadata_json,
            nsfw_score=screened.nsfw_score,
            expires_at=self.retention.expires_at(now, plan=plan, curated=catalog is not None),
        )
        style = None
        if kind == STYLE:
            entry = catalog or CatalogEntry(title=title_from_filename(filename) or image_id)
            style = StyleRecord(
                style_id=new_id("sty"),
                image_id=image_id,
                title=entry.title,
                curated=catalog is not None,
                created_at=now,
                artist=entry.artist,
                year=entry.year,
                license=entry.license,
                provenance=entry.provenance,
                tags=entry.tags,
                catalog_sha256=decoded.sha256 if catalog is not None else None,
            )
        await self.blobs.put(key, data, decoded.content_type)
        if await self.store.insert_image(image, style):
            logger.info(
                "image stored",
                extra={
                    "image_id": image_id,
                    "owner_id": owner_id,
                    "kind": kind,
                    "size_bytes": len(data),
                    "format": decoded.format,
                    "nsfw_score": screened.nsfw_score,
                },
            )
            return image, True
        existing = await self.store.get_image(image_id)
        if existing is None or existing.blob_key != key:
            await self.blobs.delete(key)
        return existing or image, False

    def _log_refusal(
        self, image_id: str, owner_id: str, kind: str, score: float | None, *, curated: bool
    ) -> None:
        safety = self._screening.safety
        fields: dict[str, object] = {"image_id": image_id, "owner_id": owner_id, "kind": kind}
        fields |= {"nsfw_score": score, "nsfw_threshold": safety.threshold if safety else None}
        if curated:
            logger.warning("curated style above the NSFW threshold, imported", extra=fields)
        else:
            logger.info("image refused by the content-safety filter", extra=fields)

    # --- the curated catalog -------------------------------------------------------------

    async def add_curated_style(
        self, data: bytes, entry: CatalogEntry, *, filename: str
    ) -> tuple[StyleView, bool]:
        """Stores a curated style once per sha256; returns (entry, whether it was new)."""
        sha256 = hashlib.sha256(data).hexdigest()
        existing = await self.store.find_curated_style(sha256)
        if existing is not None:
            return existing, False
        _image, created = await self._store_image(
            image_id=new_id("img"),
            owner_id=SYSTEM_OWNER,
            kind=STYLE,
            data=data,
            declared_content_type=None,
            filename=filename,
            metadata_json="",
            catalog=entry,
        )
        stored = await self.store.find_curated_style(sha256)
        if stored is None:
            raise RuntimeError(f"curated style {sha256} vanished right after it was stored")
        return stored, created

    # --- housekeeping -------------------------------------------------------------------

    async def purge_reservations(self, retention: timedelta) -> int:
        """Forgets reservations that expired more than `retention` ago."""
        purged = await self.store.purge_reservations(self._clock() - retention)
        if purged:
            logger.info("expired upload reservations purged", extra={"count": purged})
        return purged


def _already_uploaded(image_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"image {image_id} has already been uploaded; request a new upload URL with "
        "SignUpload for another image",
        reason="already_uploaded",
    )


def _same_image_or_conflict(
    existing: ImageRecord, owner_id: str, kind: str, sha256: str
) -> ImageRecord:
    if existing.sha256 == sha256 and existing.owner_id == owner_id and existing.kind == kind:
        return existing
    raise AlreadyExists(
        f"image {existing.image_id} already exists with different content or owner; "
        "store a new image under a new id",
        field="image_id",
        reason="image_id_taken",
    )
