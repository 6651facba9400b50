"""StorageService over gRPC: converts messages and delegates to the ImageLibrary."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import timestamp_pb2

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.runtime.audit import AuditReporter
from gouache.runtime.auth import MethodPolicy
from gouache.runtime.context import current_principal
from gouache.runtime.errors import InvalidArgument
from services.storage.domain import ImageLibrary, UploadHeader
from services.storage.domain.lifecycle import ImageLifecycle
from services.storage.records import ImageRecord, StyleView

SERVICE_NAME = "gouache.storage.v1.StorageService"

POLICY: MethodPolicy = {
    f"/{SERVICE_NAME}/SignUpload": "write:jobs",
    f"/{SERVICE_NAME}/UploadImage": "write:jobs",
    f"/{SERVICE_NAME}/DownloadImage": "read:jobs",
    f"/{SERVICE_NAME}/GetImage": "read:jobs",
    f"/{SERVICE_NAME}/ResolveImageUrl": "read:jobs",
    f"/{SERVICE_NAME}/SignDownload": "read:jobs",
    f"/{SERVICE_NAME}/ListStyles": "read:jobs",
    f"/{SERVICE_NAME}/DeleteImage": "write:jobs",
    f"/{SERVICE_NAME}/EraseOwner": "internal",
}


def _timestamp(value: Any) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def image_to_proto(image: ImageRecord, file_url: str) -> storage_pb2.Image:
    """The Image message for a stored image."""
    return storage_pb2.Image(
        image_id=image.image_id,
        owner_id=image.owner_id,
        kind=image.kind,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=image.size_bytes,
        sha256=image.sha256,
        file_url=file_url,
        created_at=_timestamp(image.created_at),
        metadata_json=image.metadata_json,
        nsfw_score=image.nsfw_score,
        expires_at=None if image.expires_at is None else _timestamp(image.expires_at),
    )


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    """One method per RPC; every rule lives in the library."""

    def __init__(
        self,
        library: ImageLibrary,
        lifecycle: ImageLifecycle,
        audit: AuditReporter | None = None,
    ) -> None:
        self._library = library
        self._lifecycle = lifecycle
        self._audit = audit

    def _image(self, image: ImageRecord) -> storage_pb2.Image:
        return image_to_proto(image, self._library.file_url(image.image_id))

    def _style(self, view: StyleView) -> storage_pb2.Style:
        style = view.style
        return storage_pb2.Style(
            style_id=style.style_id,
            title=style.title,
            artist=style.artist,
            year=style.year,
            license=style.license,
            provenance=style.provenance,
            curated=style.curated,
            file_url=self._library.file_url(style.image_id),
            width=view.image.width,
            height=view.image.height,
            tags=list(style.tags),
        )

    async def SignUpload(
        self, request: storage_pb2.SignUploadRequest, context: Any
    ) -> storage_pb2.SignUploadResponse:
        ticket = await self._library.sign_upload(
            current_principal(),
            filename=request.filename,
            content_type=request.content_type,
            kind=request.kind,
        )
        return storage_pb2.SignUploadResponse(
            upload_url=ticket.upload_url,
            file_url=ticket.file_url,
            expires_at=_timestamp(ticket.expires_at),
            image_id=ticket.image_id,
        )

    async def UploadImage(
        self, request_iterator: AsyncIterator[storage_pb2.UploadImageRequest], context: Any
    ) -> storage_pb2.UploadImageResponse:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument(
                "the first UploadImage message must carry the header; send the bytes after it",
                field="header",
            )
        header = first.header
        principal = current_principal()
        # Refused before a byte is stored: a caller that may not ask, or a bad lifetime.
        url_ttl = (
            self._library.stored_url_ttl(principal, header.download_url_ttl_seconds)
            if header.download_url_ttl_seconds
            else None
        )
        image = await self._library.upload(
            principal,
            UploadHeader(
                filename=header.filename,
                content_type=header.content_type,
                kind=header.kind,
                image_id=header.image_id,
                owner_id=header.owner_id,
                metadata_json=header.metadata_json,
            ),
            _chunks(messages),
        )
        response = storage_pb2.UploadImageResponse(image=self._image(image))
        if url_ttl is not None:
            signed = self._library.sign_stored(image, url_ttl)
            response.download_url = signed.url
            response.download_url_expires_at.CopyFrom(_timestamp(signed.expires_at))
        return response

    async def DownloadImage(
        self, request: storage_pb2.DownloadImageRequest, context: Any
    ) -> AsyncIterator[storage_pb2.DownloadImageResponse]:
        image = await self._library.get_image(current_principal(), request.image_id)
        described = False
        async with contextlib.aclosing(await self._library.open_image(image)) as chunks:
            async for chunk in chunks:
                if described:
                    yield storage_pb2.DownloadImageResponse(chunk=chunk)
                else:
                    yield storage_pb2.DownloadImageResponse(image=self._image(image), chunk=chunk)
                    described = True
        if not described:
            yield storage_pb2.DownloadImageResponse(image=self._image(image))

    async def GetImage(self, request: storage_pb2.GetImageRequest, context: Any) -> Any:
        image = await self._library.get_image(current_principal(), request.image_id)
        return self._image(image)

    async def ResolveImageUrl(
        self, request: storage_pb2.ResolveImageUrlRequest, context: Any
    ) -> storage_pb2.ResolveImageUrlResponse:
        image = await self._library.resolve(current_principal(), request.url, request.owner_id)
        return storage_pb2.ResolveImageUrlResponse(image=self._image(image))

    async def SignDownload(
        self, request: storage_pb2.SignDownloadRequest, context: Any
    ) -> storage_pb2.SignDownloadResponse:
        signed = await self._library.sign_download(
            current_principal(), request.image_id, request.ttl_seconds
        )
        return storage_pb2.SignDownloadResponse(
            url=signed.url, expires_at=_timestamp(signed.expires_at)
        )

    async def DeleteImage(
        self, request: storage_pb2.DeleteImageRequest, context: Any
    ) -> storage_pb2.DeleteImageResponse:
        principal = current_principal()
        image = await self._lifecycle.delete_image(principal, request.image_id)
        if self._audit is not None and not principal.is_service:  # jobs reports job.deleted
            await self._audit.report(
                principal,
                "image.deleted",
                target=f"image:{image.image_id}",
                subject_id=image.owner_id,
                detail=f"kind={image.kind}",
            )
        return storage_pb2.DeleteImageResponse(image_id=image.image_id)

    async def EraseOwner(
        self, request: storage_pb2.EraseOwnerRequest, context: Any
    ) -> storage_pb2.EraseOwnerResponse:
        limit = request.limit
        if not 0 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be within 0 and 10000, got {limit}", field="limit")
        removed, done = await self._lifecycle.erase_owner(request.owner_id, limit or 100)
        return storage_pb2.EraseOwnerResponse(removed=removed, done=done)

    async def ListStyles(
        self, request: storage_pb2.ListStylesRequest, context: Any
    ) -> storage_pb2.ListStylesResponse:
        page = await self._library.list_styles(
            current_principal(),
            curated=request.curated if request.HasField("curated") else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return storage_pb2.ListStylesResponse(
            styles=[self._style(view) for view in page.styles],
            next_page_token=page.next_page_token,
        )


async def _chunks(
    messages: AsyncIterator[storage_pb2.UploadImageRequest],
) -> AsyncIterator[bytes]:
    async for message in messages:
        if message.WhichOneof("part") != "chunk":
            raise InvalidArgument(
                "only the first UploadImage message may carry a header; send the rest as chunks",
                field="header",
            )
        yield message.chunk
