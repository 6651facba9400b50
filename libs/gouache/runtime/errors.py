"""The one error hierarchy: domain code raises these, one interceptor maps them to gRPC status."""

from __future__ import annotations

from collections.abc import Mapping

import grpc


class GouacheError(Exception):
    """An error a caller can act on; `message` is shown to the caller verbatim.

    `field` names the offending request field (for INVALID_ARGUMENT), `reason` is a
    short machine-readable code such as "image_too_large", `metadata` adds facts to the
    ErrorInfo detail, and `retry_after_s` says when to retry (a RetryInfo detail and a
    `retry-after` header).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.reason = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.retry_after_s = retry_after_s


class InvalidArgument(GouacheError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(GouacheError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(GouacheError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(GouacheError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(GouacheError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(GouacheError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(GouacheError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(GouacheError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(GouacheError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Aborted(GouacheError):
    code = grpc.StatusCode.ABORTED


class Internal(GouacheError):
    """A failure the server knows about and names (e.g. one injected for a test).

    Unexpected exceptions need no class: the interceptor turns them into INTERNAL with
    a generic message. Not in `_BY_CODE`: another service's INTERNAL stays UNAVAILABLE.
    """

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[GouacheError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Aborted,
    )
}


def from_rpc_error(error: grpc.aio.AioRpcError, *, context: str) -> GouacheError:
    """Turns a failed outbound call into our error, keeping its code and message.

    Unknown and internal codes of another service become UNAVAILABLE for our caller:
    the dependency failed, not the caller's request.
    """
    cls = _BY_CODE.get(error.code(), Unavailable)
    return cls(f"{context}: {error.details() or error.code().name}")
