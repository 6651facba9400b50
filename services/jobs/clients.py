"""Adapters to other services: the storage calls jobs makes, behind small protocols."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc
from google.rpc import error_details_pb2, status_pb2

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.feedback.v1 import feedback_pb2, feedback_pb2_grpc
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


class ResultExpired(NotFound):
    """sign_download's answer for a result whose retention period ended (storage said
    FAILED_PRECONDITION, reason `expired`); a NotFound to callers that only need the URL."""

    def __init__(self, message: str, expired_at: datetime | None) -> None:
        super().__init__(message, reason="expired")
        self.expired_at = expired_at


# EraseOwner calls one erasure attempt makes before it gives up until the next attempt.
_MAX_ERASE_CALLS = 10_000


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
        """A URL to GET the image's bytes without a token for ttl_s seconds; NotFound, or
        ResultExpired when its retention period ended."""
        ...

    async def delete_image(self, image_id: str) -> None:
        """Deletes a result image from storage; NotFound when it is already gone."""
        ...


def _error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail a gouache service sends with an error, if any."""
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not isinstance(raw, bytes):
        return None
    for detail in status_pb2.Status.FromString(raw).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def _storage_error(exc: grpc.aio.AioRpcError, what: str) -> GouacheError:
    code = exc.code()
    cls = _CALLER_ERRORS.get(code)
    info = _error_info(exc)
    if (
        code == grpc.StatusCode.FAILED_PRECONDITION
        and info is not None
        and info.reason == "expired"
    ):
        at = info.metadata.get("expired_at")
        return ResultExpired(exc.details() or code.name, datetime.fromisoformat(at) if at else None)
    if cls is not None:
        return cls(exc.details() or code.name, reason=info.reason if info else None)
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

    async def delete_image(self, image_id: str) -> None:
        """Deletes a result image (jobs acts as a service, so any owner's)."""
        try:
            await self._stub.DeleteImage(
                storage_pb2.DeleteImageRequest(image_id=image_id), **await self._calls()
            )
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc, "delete the result image") from exc


class ErasureClients:
    """An erasure's shares at auth, storage and feedback (erasure.ErasureParticipants)."""

    def __init__(
        self,
        *,
        auth: grpc.aio.Channel,
        storage: grpc.aio.Channel,
        feedback: grpc.aio.Channel,
        calls: CallOptions,
        batch: int = 100,
    ) -> None:
        self._auth = auth_pb2_grpc.AuthServiceStub(auth)
        self._storage = storage_pb2_grpc.StorageServiceStub(storage)
        self._feedback = feedback_pb2_grpc.FeedbackServiceStub(feedback)
        self._calls = calls
        self._batch = batch

    async def delete_account(self, user_id: str) -> None:
        await self._auth.DeleteAccount(
            auth_pb2.DeleteAccountRequest(user_id=user_id), **await self._calls()
        )

    async def erase_images(self, user_id: str) -> None:
        """EraseOwner in bounded calls until storage says nothing of the user is left."""
        for _ in range(_MAX_ERASE_CALLS):
            reply = await self._storage.EraseOwner(
                storage_pb2.EraseOwnerRequest(owner_id=user_id, limit=self._batch),
                **await self._calls(),
            )
            if reply.done:
                return
        raise RuntimeError(
            f"storage still holds images of the user after {_MAX_ERASE_CALLS} calls; "
            "the erasure is retried"
        )

    async def erase_feedback(self, user_id: str) -> None:
        await self._feedback.EraseUser(
            feedback_pb2.EraseUserRequest(user_id=user_id), **await self._calls()
        )
