"""What the ImageLibrary works with: the database port it needs and the values it hands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.storage.records import ImageRecord, Reservation, StyleCursor, StyleRecord, StyleView


class ImageStore(Protocol):
    """What the library needs from the database (store.StorageStore implements it)."""

    async def add_reservation(self, reservation: Reservation) -> None: ...

    async def get_reservation(self, image_id: str) -> Reservation | None: ...

    async def purge_reservations(self, expired_before: datetime) -> int:
        """Deletes reservations that expired before the given time; returns how many."""

    async def get_image(self, image_id: str) -> ImageRecord | None: ...

    async def insert_image(self, image: ImageRecord, style: StyleRecord | None = None) -> bool:
        """Inserts an image (and its style); False, writing nothing, when the id is taken."""

    async def get_style(self, style_id: str) -> StyleView | None: ...

    async def find_curated_style(self, sha256: str) -> StyleView | None: ...

    async def list_styles(
        self,
        *,
        curated: bool | None,
        owner_id: str,
        after: StyleCursor | None,
        limit: int,
    ) -> list[StyleView]: ...


@dataclass(frozen=True)
class UploadTicket:
    """What SignUpload hands out: where to PUT the bytes and how to name the image after."""

    image_id: str
    upload_url: str
    file_url: str
    expires_at: datetime


@dataclass(frozen=True)
class UploadHeader:
    """The header of a streamed upload (UploadImage), as sent."""

    filename: str = ""
    content_type: str = ""
    kind: str = ""
    image_id: str = ""
    owner_id: str = ""
    metadata_json: str = ""


@dataclass(frozen=True)
class CatalogEntry:
    """The descriptive fields of a curated style."""

    title: str
    artist: str = ""
    year: str = ""
    license: str = ""
    provenance: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StylePage:
    styles: list[StyleView]
    next_page_token: str
