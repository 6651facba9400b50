"""The storage service's tables and the adapter that reads and writes them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    false,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from gouache.db import (
    Migrations,
    PortableJSON,
    ServiceDatabase,
    UtcDateTime,
    is_unique_violation,
    new_metadata,
)
from services.storage.records import (
    DELETING,
    EXPIRED,
    EXPIRING,
    ImageRecord,
    Reservation,
    StyleCursor,
    StyleRecord,
    StyleView,
)

metadata = new_metadata()

images = Table(
    "images",
    metadata,
    Column("image_id", String(40), primary_key=True),
    Column("owner_id", String(128), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("format", String(8), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("blob_key", String(1024), nullable=False),
    Column("filename", String(255), nullable=False, default=""),
    Column("metadata_json", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    # The content-safety score at upload (migration 0002); NULL for results.
    Column("nsfw_score", Float, nullable=True),
    # Retention and removal (migration 0003; records.py says what the states mean).
    Column("expires_at", UtcDateTime, nullable=True, index=True),
    Column("removal", String(16), nullable=True),
    Column("removed_at", UtcDateTime, nullable=True),
    Index("ix_images_removal", "removal", "removed_at"),
)

upload_reservations = Table(
    "upload_reservations",
    metadata,
    Column("image_id", String(40), primary_key=True),
    Column("owner_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("plan", String(64), nullable=False, server_default=""),
)

styles = Table(
    "styles",
    metadata,
    Column("style_id", String(40), primary_key=True),
    Column(
        "image_id",
        String(40),
        ForeignKey("images.image_id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("title", String(512), nullable=False),
    Column("artist", String(512), nullable=False, default=""),
    Column("year", String(64), nullable=False, default=""),
    Column("license", Text, nullable=False, default=""),
    Column("provenance", Text, nullable=False, default=""),
    Column("tags", PortableJSON, nullable=False),
    Column("curated", Boolean, nullable=False),
    Column("catalog_sha256", String(64), nullable=True, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_styles_curated_style_id", "curated", "style_id"),
)


class StorageStore(ServiceDatabase):
    """Reads and writes images, reservations and styles in one database."""

    migrations = Migrations("storage", Path(__file__).with_name("migrations"), metadata)

    async def add_reservation(self, reservation: Reservation) -> None:
        """Records an image id handed out by SignUpload."""
        async with self.sessions() as session, session.begin():
            # Parameters beside the statement, not in it: the statement's compiled form
            # is cached once instead of keyed again for every row.
            await session.execute(upload_reservations.insert(), _reservation_row(reservation))

    async def get_reservation(self, image_id: str) -> Reservation | None:
        """The reservation of image_id, if there is one."""
        async with self.reads() as session:
            row = (
                (
                    await session.execute(
                        select(upload_reservations).where(
                            upload_reservations.c.image_id == image_id
                        )
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else Reservation(**dict(row))

    async def purge_reservations(self, expired_before: datetime) -> int:
        """Deletes reservations that expired before the given time; returns how many."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                delete(upload_reservations).where(upload_reservations.c.expires_at < expired_before)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def get_image(self, image_id: str) -> ImageRecord | None:
        """The image stored under image_id, if any."""
        async with self.reads() as session:
            row = (
                (await session.execute(select(images).where(images.c.image_id == image_id)))
                .mappings()
                .first()
            )
        return None if row is None else _image(row)

    async def insert_image(self, image: ImageRecord, style: StyleRecord | None = None) -> bool:
        """Inserts an image (and its style entry) in one transaction.

        Returns False, writing nothing, when the image id (or a curated entry's sha256) is
        already taken, so that the caller can look at what is there.
        """
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(images.insert(), _image_row(image))
                if style is not None:
                    await session.execute(styles.insert().values(**_style_row(style)))
        except IntegrityError as exc:
            if is_unique_violation(exc):
                return False
            raise
        return True

    async def get_style(self, style_id: str) -> StyleView | None:
        """The style entry style_id names, with its image, if any."""
        query = _style_query().where(styles.c.style_id == style_id)
        async with self.reads() as session:
            row = (await session.execute(query)).mappings().first()
        return None if row is None else _style_view(row)

    async def find_curated_style(self, sha256: str) -> StyleView | None:
        """The curated catalog entry imported from an image with this sha256, if any."""
        query = _style_query().where(styles.c.catalog_sha256 == sha256)
        async with self.reads() as session:
            row = (await session.execute(query)).mappings().first()
        return None if row is None else _style_view(row)

    async def list_styles(
        self,
        *,
        curated: bool | None,
        owner_id: str,
        after: StyleCursor | None,
        limit: int,
    ) -> list[StyleView]:
        """Styles visible to owner_id: the catalog, their own uploads, or both (curated=None).

        Ordered by curated entries first, then by style id (creation order); `after`
        continues from the last entry of the previous page.
        """
        own = and_(
            styles.c.curated == false(),
            images.c.owner_id == owner_id,
            images.c.removal.is_(None),
        )
        catalog = styles.c.curated == true()
        visible = catalog if curated is True else own if curated is False else or_(catalog, own)
        query = _style_query().where(visible)
        if after is not None:
            if after.curated:
                query = query.where(
                    or_(
                        styles.c.curated == false(),
                        and_(styles.c.curated == true(), styles.c.style_id > after.style_id),
                    )
                )
            else:
                query = query.where(
                    and_(styles.c.curated == false(), styles.c.style_id > after.style_id)
                )
        query = query.order_by(styles.c.curated.desc(), styles.c.style_id.asc()).limit(limit)
        async with self.reads() as session:
            rows = (await session.execute(query)).mappings().all()
        return [_style_view(row) for row in rows]

    # --- retention and removal (domain/lifecycle.py) -------------------------------------

    async def begin_removal(
        self, image_id: str, removal: str, at: datetime, *, only_if_expired: bool = False
    ) -> bool:
        """Marks a present image DELETING or EXPIRING (hidden from then on); False when it
        is gone or already being removed (a DELETING mark may replace any other one).

        `only_if_expired` marks it only while its expires_at has passed `at`."""
        condition = images.c.image_id == image_id
        if removal == DELETING:
            condition = and_(
                condition, or_(images.c.removal.is_(None), images.c.removal != DELETING)
            )
        else:
            condition = and_(condition, images.c.removal.is_(None))
        if only_if_expired:
            condition = and_(condition, images.c.expires_at <= at)
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(images).where(condition).values(removal=removal, removed_at=at)
            )
        return bool(getattr(result, "rowcount", 0))

    async def finish_removal(self, image: ImageRecord) -> None:
        """After the blob is gone: a DELETING row (and its style entry) goes, an EXPIRING
        one stays as an EXPIRED tombstone without its description."""
        async with self.sessions() as session, session.begin():
            if image.removal == DELETING:
                await session.execute(delete(styles).where(styles.c.image_id == image.image_id))
                await session.execute(delete(images).where(images.c.image_id == image.image_id))
            else:
                await session.execute(
                    update(images)
                    .where(images.c.image_id == image.image_id, images.c.removal == EXPIRING)
                    .values(removal=EXPIRED, filename="", metadata_json="")
                )

    async def images_to_expire(self, now: datetime, limit: int) -> list[str]:
        """Ids of present images whose retention ended, oldest expiry first."""
        query = (
            select(images.c.image_id)
            .where(images.c.removal.is_(None), images.c.expires_at <= now)
            .order_by(images.c.expires_at)
            .limit(limit)
        )
        async with self.reads() as session:
            return [row[0] for row in await session.execute(query)]

    async def unfinished_removals(self, started_before: datetime, limit: int) -> list[ImageRecord]:
        """Images whose removal began before `started_before` and did not finish."""
        query = (
            select(images)
            .where(images.c.removal.in_([DELETING, EXPIRING]))
            .where(images.c.removed_at <= started_before)
            .order_by(images.c.removed_at)
            .limit(limit)
        )
        async with self.reads() as session:
            return [_image(row) for row in (await session.execute(query)).mappings()]

    async def forget_tombstones(self, expired_before: datetime, limit: int) -> int:
        """Deletes up to `limit` EXPIRED tombstones older than `expired_before`."""
        ids = (
            select(images.c.image_id)
            .where(images.c.removal == EXPIRED, images.c.removed_at < expired_before)
            .limit(limit)
        )
        async with self.sessions() as session, session.begin():
            chosen = [row[0] for row in await session.execute(ids)]
            if not chosen:
                return 0
            await session.execute(delete(styles).where(styles.c.image_id.in_(chosen)))
            await session.execute(delete(images).where(images.c.image_id.in_(chosen)))
        return len(chosen)

    async def delete_reservations(self, owner_id: str) -> int:
        """Deletes every upload reservation of an owner (for an erasure)."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                delete(upload_reservations).where(upload_reservations.c.owner_id == owner_id)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def owner_image_ids(self, owner_id: str, limit: int) -> list[str]:
        """Ids of an owner's images in any state, tombstones included (for an erasure)."""
        query = select(images.c.image_id).where(images.c.owner_id == owner_id).limit(limit)
        async with self.reads() as session:
            return [row[0] for row in await session.execute(query)]


def _style_query() -> Any:
    return select(
        *[column.label(f"s_{column.name}") for column in styles.c],
        *[column.label(f"i_{column.name}") for column in images.c],
    ).select_from(styles.join(images, styles.c.image_id == images.c.image_id))


def _image(row: Any) -> ImageRecord:
    return ImageRecord(**dict(row))


def _style_view(row: Any) -> StyleView:
    style = {name[2:]: value for name, value in row.items() if name.startswith("s_")}
    image = {name[2:]: value for name, value in row.items() if name.startswith("i_")}
    style["tags"] = tuple(str(tag) for tag in style.get("tags") or ())
    return StyleView(style=StyleRecord(**style), image=ImageRecord(**image))


def _image_row(image: ImageRecord) -> dict[str, Any]:
    return {
        "image_id": image.image_id,
        "owner_id": image.owner_id,
        "kind": image.kind,
        "content_type": image.content_type,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size_bytes,
        "sha256": image.sha256,
        "blob_key": image.blob_key,
        "filename": image.filename,
        "metadata_json": image.metadata_json,
        "created_at": image.created_at,
        "nsfw_score": image.nsfw_score,
        "expires_at": image.expires_at,
        "removal": image.removal,
        "removed_at": image.removed_at,
    }


def _reservation_row(reservation: Reservation) -> dict[str, Any]:
    return {
        "image_id": reservation.image_id,
        "owner_id": reservation.owner_id,
        "kind": reservation.kind,
        "content_type": reservation.content_type,
        "filename": reservation.filename,
        "expires_at": reservation.expires_at,
        "created_at": reservation.created_at,
        "plan": reservation.plan,
    }


def _style_row(style: StyleRecord) -> dict[str, Any]:
    return {
        "style_id": style.style_id,
        "image_id": style.image_id,
        "title": style.title,
        "artist": style.artist,
        "year": style.year,
        "license": style.license,
        "provenance": style.provenance,
        "tags": list(style.tags),
        "curated": style.curated,
        "catalog_sha256": style.catalog_sha256,
        "created_at": style.created_at,
    }
