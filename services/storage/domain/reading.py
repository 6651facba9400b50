"""What a caller reads from storage: an image's record and bytes, signed downloads, the
image a URL or style id names, and the style listings."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime, timedelta

from gouache.blobs import BlobStore
from gouache.runtime.context import Principal
from gouache.runtime.errors import FailedPrecondition, NotFound, PermissionDenied
from services.storage.domain.lifecycle import present
from services.storage.domain.model import ImageStore, StylePage
from services.storage.domain.rules import (
    DOWNLOAD_CHUNK_BYTES,
    decode_page_token,
    download_ttl,
    encode_page_token,
    listing_for,
    may_read,
    page_size_or_default,
    validate_image_id,
)
from services.storage.records import ImageRecord, StyleCursor
from services.storage.urls import SignedUrl, UrlSigner, is_style_id, parse_image_ref


class ImageReads:
    """ImageLibrary's reads (a mixin: ImageLibrary sets the attributes declared here)."""

    store: ImageStore
    blobs: BlobStore
    signer: UrlSigner
    _clock: Callable[[], datetime]

    async def get_image(self, principal: Principal, image_id: str) -> ImageRecord:
        """An image the caller may read; NOT_FOUND for missing and for other users' images."""
        validate_image_id(image_id)
        image = await self.store.get_image(image_id)
        if image is None or not may_read(principal, image):
            raise NotFound(f"image {image_id} not found")
        return present(image, image_id)

    async def open_image(self, image: ImageRecord) -> AsyncGenerator[bytes, None]:
        """The image's bytes in chunks of 1 MiB; `aclose()` it if you stop early."""
        chunks = await self.blobs.open(image.blob_key, chunk_bytes=DOWNLOAD_CHUNK_BYTES)
        return _closing(chunks)

    async def image_for_signed_download(
        self, image_id: str, *, expires: str | None, sig: str | None
    ) -> ImageRecord:
        """The image a signed GET names, after checking its signature and expiry."""
        self.signer.verify("GET", image_id, expires, sig, now=self._clock())
        return present(await self.store.get_image(image_id), image_id)

    async def sign_download(
        self, principal: Principal, image_id: str, ttl_seconds: int
    ) -> SignedUrl:
        """A URL to GET an image without a token, for ttl_seconds (default 1 hour)."""
        ttl = download_ttl(ttl_seconds)
        image = await self.get_image(principal, image_id)
        return self.signer.sign("GET", image.image_id, self._clock() + ttl)

    def stored_url_ttl(self, principal: Principal, ttl_seconds: int) -> timedelta:
        """The lifetime of the GET URL UploadImage signs when a service asks for one
        (download_url_ttl_seconds), checked before anything is stored."""
        if not principal.is_service:
            raise PermissionDenied(
                "only services may ask UploadImage for a download URL; call SignDownload",
                field="download_url_ttl_seconds",
            )
        return download_ttl(ttl_seconds)

    def sign_stored(self, image: ImageRecord, ttl: timedelta) -> SignedUrl:
        """A GET URL for an image just stored, signed without reading it back."""
        return self.signer.sign("GET", image.image_id, self._clock() + ttl)

    async def resolve(self, principal: Principal, url: str, owner_id: str) -> ImageRecord:
        """The image a file URL, an image id or a style id names, if the acting user may use it.

        Services pass the user they act for in owner_id. A reserved id whose bytes have not
        arrived is FAILED_PRECONDITION, so the caller knows to finish the upload first. A
        style id (ListStyles' style_id) names its image: any curated style, or one's own.
        """
        acting = self._acting_owner(principal, owner_id)
        if is_style_id(url.strip()):
            return await self._style_image(url.strip(), acting)
        image_id = parse_image_ref(url)
        image = await self.store.get_image(image_id)
        if image is not None:
            if acting is None or image.curated or image.owner_id == acting:
                return present(image, image_id)
            raise NotFound(f"image {image_id} not found")
        reservation = await self.store.get_reservation(image_id)
        if reservation is not None and (acting is None or reservation.owner_id == acting):
            if reservation.expires_at <= self._clock():
                raise FailedPrecondition(
                    f"upload {image_id} expired before the image arrived: request a new "
                    "upload URL with SignUpload and PUT the image to it",
                    reason="upload_expired",
                )
            raise FailedPrecondition(
                f"upload {image_id} has not finished: PUT the image to its upload_url first",
                reason="upload_pending",
            )
        raise NotFound(f"image {image_id} not found")

    async def _style_image(self, style_id: str, acting: str | None) -> ImageRecord:
        view = await self.store.get_style(style_id)
        if view is None or not (
            acting is None or view.style.curated or view.image.owner_id == acting
        ):
            raise NotFound(
                f"style {style_id} not found; GET /v1/styles lists the curated styles and yours"
            )
        return present(view.image, view.image.image_id)

    @staticmethod
    def _acting_owner(principal: Principal, owner_id: str) -> str | None:
        """Whose images the caller may use (a project); None means any (a service acting for
        itself)."""
        if not owner_id:
            return None if principal.is_service else principal.project_id
        if principal.is_service or owner_id == principal.project_id:
            return owner_id
        raise PermissionDenied(
            "only services may resolve images on behalf of another project; leave owner_id empty",
            field="owner_id",
        )

    async def list_styles(
        self, principal: Principal, *, curated: bool | None, page_size: int, page_token: str
    ) -> StylePage:
        """The catalog (curated=True), the caller's own styles (False), or both (None)."""
        limit = page_size_or_default(page_size)
        listing = listing_for(curated)
        cursor = decode_page_token(page_token, listing)
        rows = await self.store.list_styles(
            curated=curated, owner_id=principal.project_id, after=cursor, limit=limit + 1
        )
        page, more = rows[:limit], len(rows) > limit
        token = ""
        if more:
            last = page[-1].style
            token = encode_page_token(
                listing, StyleCursor(curated=last.curated, style_id=last.style_id)
            )
        return StylePage(styles=page, next_page_token=token)


async def _closing(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Passes chunks through and closes the source however the consumer stops."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
