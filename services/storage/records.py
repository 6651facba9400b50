"""What the storage service keeps: images, upload reservations and style catalog entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

CONTENT = "content"
STYLE = "style"
RESULT = "result"
KINDS = (CONTENT, STYLE, RESULT)

# Owner of the curated catalog's images; reserved, so no upload may claim it.
SYSTEM_OWNER = "system"

# ImageRecord.removal: how far an image's removal went (None: it is there). "deleting" (a
# DeleteImage or an erasure: the row goes after the blob), "expiring" (its retention ended:
# the blob goes, the row stays as a tombstone) and "expired" (the tombstone: the bytes are
# gone, the row says since when, until the sweep forgets it). Every removal is one of these
# before its blob is touched, so a crash midway leaves a row the next sweep finishes.
DELETING = "deleting"
EXPIRING = "expiring"
EXPIRED = "expired"


@dataclass(frozen=True)
class ImageRecord:
    """One stored image and where its bytes are."""

    image_id: str
    owner_id: str
    kind: str
    content_type: str
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    blob_key: str
    created_at: datetime
    filename: str = ""
    metadata_json: str = ""
    # The content-safety classifier's score (0-1, how likely not safe for work), measured at
    # upload; None for results and for images stored while the check was off.
    nsfw_score: float | None = None
    # When the retention period ends (None: kept until deleted, as curated styles are).
    expires_at: datetime | None = None
    # DELETING, EXPIRING or EXPIRED once its removal began, and when it did.
    removal: str | None = None
    removed_at: datetime | None = None

    @property
    def curated(self) -> bool:
        """Curated catalog images are owned by the system and readable by everyone."""
        return self.owner_id == SYSTEM_OWNER


@dataclass(frozen=True)
class Reservation:
    """An image id handed out by SignUpload, waiting for its bytes."""

    image_id: str
    owner_id: str
    kind: str
    content_type: str
    filename: str
    expires_at: datetime
    created_at: datetime
    # The uploader's plan (a token's `plan` claim), which sets the image's retention.
    plan: str = ""


@dataclass(frozen=True)
class StyleRecord:
    """A style image's catalog entry (curated) or a user's own style upload (not curated)."""

    style_id: str
    image_id: str
    title: str
    curated: bool
    created_at: datetime
    artist: str = ""
    year: str = ""
    license: str = ""
    provenance: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    # The sha256 a curated entry was imported from (None for user styles): keeps imports
    # idempotent even when two run at once.
    catalog_sha256: str | None = None


@dataclass(frozen=True)
class StyleView:
    """A style entry together with the image it describes, as ListStyles returns it."""

    style: StyleRecord
    image: ImageRecord


@dataclass(frozen=True)
class StyleCursor:
    """Where a page of styles ended: ordered by curated first, then by style id."""

    curated: bool
    style_id: str
