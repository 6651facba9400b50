"""The SDK's errors: one class per kind of failure, the same for REST and gRPC.

Every error the API answers becomes an `ApiError` subclass chosen by its gRPC status code
(REST bodies carry it as `code`; a body without one, such as a proxy's plain 503, is
classified by its HTTP status), so `except NotFoundError` works whichever transport made
the call. `status` is the HTTP status (for gRPC, the canonical mapping of its code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The canonical gRPC code -> HTTP status mapping (google.rpc.Code), the one the edge uses.
HTTP_STATUS_BY_CODE: Mapping[int, int] = {
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}
_CODE_BY_HTTP_STATUS: Mapping[int, int] = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    409: 6,
    413: 3,
    415: 3,
    429: 8,
    499: 1,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
UNAVAILABLE = 14


class ApiError(Exception):
    """A call the API refused or could not answer.

    status: the HTTP status (for gRPC, the canonical one of its code); code: the gRPC status
    code number, or None when the answer carried none; message: the server's message, meant
    for a person; reason: the machine-readable reason of its ErrorInfo detail, if any (e.g.
    "RATE_LIMITED", "model_version_not_found"); retry_after_s: when the server said to retry.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = None,
        *,
        reason: str | None = None,
        retry_after_s: float | None = None,
        details: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.code = code
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.details = tuple(details)


class InvalidArgumentError(ApiError):
    """The request is malformed or names something unusable (HTTP 400, INVALID_ARGUMENT or
    OUT_OF_RANGE); the message names the field."""


class FailedPreconditionError(ApiError):
    """The request is valid but the resource is not in a state that allows it (HTTP 400,
    FAILED_PRECONDITION), e.g. rating a job that failed."""


class UnauthenticatedError(ApiError):
    """No valid credentials: a wrong or revoked API key, an expired token (HTTP 401)."""


class PermissionDeniedError(ApiError):
    """The credentials do not allow this call (HTTP 403): a missing scope, an admin call."""


class NotFoundError(ApiError):
    """No such resource for this user (HTTP 404)."""


class ConflictError(ApiError):
    """The request clashes with the current state (HTTP 409, ALREADY_EXISTS or ABORTED),
    e.g. an idempotency key reused for a different request."""


class RateLimitedError(ApiError):
    """Too many requests (HTTP 429, RESOURCE_EXHAUSTED); retry_after_s says when to retry."""


class UnavailableError(ApiError):
    """The service could not answer now (HTTP 503, UNAVAILABLE, or no answer at all);
    retrying later may succeed."""


class DeadlineExceededError(ApiError):
    """The call took longer than its deadline (HTTP 504, DEADLINE_EXCEEDED)."""


class ServerError(ApiError):
    """The server failed (HTTP 5xx: INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS)."""


_CLASS_BY_CODE: Mapping[int, type[ApiError]] = {
    3: InvalidArgumentError,
    11: InvalidArgumentError,
    9: FailedPreconditionError,
    16: UnauthenticatedError,
    7: PermissionDeniedError,
    5: NotFoundError,
    6: ConflictError,
    10: ConflictError,
    8: RateLimitedError,
    14: UnavailableError,
    4: DeadlineExceededError,
}


def error_for(
    status: int | None,
    message: str,
    code: int | None,
    *,
    reason: str | None = None,
    retry_after_s: float | None = None,
    details: Sequence[Mapping[str, Any]] = (),
) -> ApiError:
    """The ApiError subclass for an answer: by its gRPC code, else by its HTTP status."""
    if code is None and status is not None:
        code = _CODE_BY_HTTP_STATUS.get(status, 13 if status >= 500 else None)
    if status is None:
        status = HTTP_STATUS_BY_CODE.get(code or 2, 500)
    cls = _CLASS_BY_CODE.get(code or -1, ServerError if status >= 500 else ApiError)
    return cls(status, message, code, reason=reason, retry_after_s=retry_after_s, details=details)


def reason_of(details: Sequence[Mapping[str, Any]]) -> str | None:
    """The reason of the first google.rpc.ErrorInfo among an error's details (JSON form)."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason")
            return str(reason) if reason else None
    return None
