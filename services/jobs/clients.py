"""Adapters to other services: the storage calls jobs makes, behind small protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc
from gouache.runtime.clients import CallOptions
from gouache.runtime.errors import (
    FailedPrecondition,
    GouacheError,
    InvalidArgument,
    NotFound,
    Unavailable,
    from_rpc_error,
)

# Storage's answers about the caller's input, passed on to the caller as they are.
_CALLER_ERRORS: dict[grpc.StatusCode, type[GouacheError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
}
# Storage refusing jobs itself is jobs' misconfiguration, not the caller's fault.
_REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


@dataclass(frozen=True)
class ResolvedImage:
    """The image a URL (or image or style id) named: its id and the sha256 of its bytes."""

    image_id: str
    sha256: str


class ImageResolver(Protocol):
    """Turns a file URL, image id or style id into an image the owner may use."""

    async def resolve_image(self, url: str, owner_id: str) -> ResolvedImage:
        """The image; NotFound, FailedPrecondition or InvalidArgument about the URL."""
        ...


class DownloadSigner(Protocol):
    """Makes time-limited download URLs for result images."""

    async def sign_download(self, image_id: str, ttl_s: int) -> str:
        """A URL to GET the image's bytes without a token for ttl_s seconds."""
        ...


def _storage_error(exc: grpc.aio.AioRpcError, what: str) -> GouacheError:
    code = exc.code()
    cls = _CALLER_ERRORS.get(code)
    if cls is not None:
        return cls(exc.details() or code.name)
    if code in _REFUSALS:
        return Unavailable(
            f"jobs may not {what} at storage ({code.name}: {exc.details()}); "
            "its service API key is missing or wrong, tell the operator"
        )
    return from_rpc_error(exc, context=f"storage could not {what}; retry shortly")


class StorageClient:
    """ImageResolver and DownloadSigner over gRPC, calling as the jobs service."""

    def __init__(self, channel: grpc.aio.Channel, calls: CallOptions) -> None:
        self._stub = storage_pb2_grpc.StorageServiceStub(channel)
        self._calls = calls

    async def resolve_image(self, url: str, owner_id: str) -> ResolvedImage:
        """Asks storage which image url names, on behalf of owner_id (checks ownership)."""
        try:
            response = await self._stub.ResolveImageUrl(
                storage_pb2.ResolveImageUrlRequest(url=url, owner_id=owner_id),
                **await self._calls(),
            )
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc, "resolve the image URL") from exc
        return ResolvedImage(image_id=response.image.image_id, sha256=response.image.sha256)

    async def sign_download(self, image_id: str, ttl_s: int) -> str:
        """A signed GET URL for a result image."""
        try:
            response = await self._stub.SignDownload(
                storage_pb2.SignDownloadRequest(image_id=image_id, ttl_seconds=ttl_s),
                **await self._calls(),
            )
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc, "sign the result URL") from exc
        url: str = response.url
        return url
