"""The one error hierarchy: domain code raises these, one interceptor maps them to gRPC status."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


# Errors of a backing service that is down or restarting (a database, an object store): the
# call may succeed if retried, so callers get UNAVAILABLE, not INTERNAL. Adapters register
# tests for their library's connection errors here (gouache.db registers the database's).
TransientTest = Callable[[BaseException], bool]
_TRANSIENT: list[tuple[TransientTest, str]] = []
TRANSIENT_RETRY_AFTER_S = 2.0


def register_transient(test: TransientTest | type[BaseException], what: str) -> None:
    """Errors that pass `test` (an exception type, or a predicate), anywhere in an exception's
    cause chain, mean `what` (e.g. "the database") is unavailable for now."""
    if isinstance(test, type):
        error_type = test

        def test(exc: BaseException) -> bool:
            return isinstance(exc, error_type)

    _TRANSIENT.append((test, what))


# A connection refused or reset that no adapter translated (SQLAlchemy's asyncpg dialect lets
# a refused connect through as a bare ConnectionRefusedError) is transient too.
register_transient(ConnectionError, "a backing service (database or object store)")


def transient_cause(exc: BaseException) -> Unavailable | None:
    """UNAVAILABLE with an actionable message when exc comes from a registered transient
    error of a backing service, else None."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for test, what in _TRANSIENT:
            if test(current):
                return Unavailable(
                    f"{what} is unavailable right now ({type(current).__name__}); "
                    "retry in a few seconds",
                    reason="BACKEND_UNAVAILABLE",
                    retry_after_s=TRANSIENT_RETRY_AFTER_S,
                )
        orig = getattr(current, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None, current.__cause__]
    return None


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
