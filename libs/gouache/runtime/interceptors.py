"""The one server interceptor: request ids, metrics, authentication and error mapping."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from gouache.runtime.auth import MethodPolicy, TokenVerifier, authorize
from gouache.runtime.context import Principal, principal_var, request_id_var
from gouache.runtime.errors import GouacheError, InvalidArgument, transient_cause
from gouache.runtime.metrics import RPC_ERRORS, RPC_LATENCY, RPC_REQUESTS

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "gouache.dev"
_ALWAYS_PUBLIC = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _status_details(error: GouacheError) -> bytes:
    """google.rpc.Status with ErrorInfo (BadRequest for a named field, RetryInfo when the
    caller should wait), serialized."""
    details: list[any_pb2.Any] = []
    info = error_details_pb2.ErrorInfo(reason=error.reason or error.code.name, domain=ERROR_DOMAIN)
    info.metadata.update(error.metadata)
    if error.field:
        info.metadata["field"] = error.field
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if error.retry_after_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(error.retry_after_s * 1e9))
        packed_retry = any_pb2.Any()
        packed_retry.Pack(retry)
        details.append(packed_retry)
    if isinstance(error, InvalidArgument) and error.field:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.field, description=error.message
                )
            ]
        )
        packed_bad = any_pb2.Any()
        packed_bad.Pack(bad)
        details.append(packed_bad)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=details
    )
    serialized: bytes = status.SerializeToString()
    return serialized


# HTTP statuses more precise than the transcoder's mapping of the gRPC code, by reason: sent
# as x-gouache-http-status, which the edge applies to REST answers (gouache.edge.status).
HTTP_STATUS_BY_REASON = {"expired": "410"}


def _error_metadata(error: GouacheError) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata: the status details, `retry-after` (whole seconds, rounded up),
    which Envoy's transcoder passes on as the HTTP Retry-After header, and the HTTP status a
    REST caller should see when the reason asks for one (410 for `expired`)."""
    entries: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", _status_details(error))]
    if error.retry_after_s is not None:
        entries.append(("retry-after", str(max(1, math.ceil(error.retry_after_s)))))
    http_status = HTTP_STATUS_BY_REASON.get(error.reason or "")
    if http_status is not None:
        entries.append(("x-gouache-http-status", http_status))
    return tuple(entries)


class CallGuard(Protocol):
    """Decides whether an authenticated call may proceed (the rate limit), or raises why not."""

    async def check(self, principal: Principal) -> None: ...


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps every RPC of a service.

    Sets the request id, authorizes the call against the service's method policy,
    applies the guard (the rate limit) to authenticated callers, maps `GouacheError` to
    its status with an actionable message, turns anything else into INTERNAL with a
    generic message and a logged traceback, and records metrics.
    """

    def __init__(
        self,
        service: str,
        policy: MethodPolicy,
        verifier: TokenVerifier | None,
        *,
        guard: CallGuard | None = None,
    ) -> None:
        self._service = service
        self._policy = policy
        self._verifier = verifier
        self._guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_ALWAYS_PUBLIC):
            return handler
        return _wrap(handler, self._make_wrapper(details))

    def _make_wrapper(self, details: grpc.HandlerCallDetails) -> _Wrapper:
        return _Wrapper(self, details.method, tuple(details.invocation_metadata or ()))


class _Wrapper:
    """Per-call state of CallInterceptor for one RPC."""

    def __init__(self, owner: CallInterceptor, method: str, metadata: tuple[Any, ...]) -> None:
        self._owner = owner
        self._method = method
        self._metadata = metadata
        self._short = method.rsplit("/", 1)[-1]

    async def enter(self) -> None:
        request_id = (
            next((str(v) for k, v in self._metadata if k.lower() == "x-request-id"), None)
            or uuid.uuid4().hex
        )
        request_id_var.set(request_id)
        principal = None
        if self._owner._verifier is not None:
            principal = await authorize(
                self._owner._policy, self._method, self._metadata, self._owner._verifier
            )
        principal_var.set(principal)
        if principal is not None and self._owner._guard is not None:
            await self._owner._guard.check(principal)

    async def fail(self, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        transient = None if isinstance(exc, GouacheError) else transient_cause(exc)
        if transient is not None:
            # A database or store restarting: the caller may retry; no traceback per call.
            logger.warning(
                "backend unavailable in %s: %s: %s", self._method, type(exc).__name__, exc
            )
            exc = transient
        if isinstance(exc, GouacheError):
            if exc.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                logger.info("rpc refused", extra={"method": self._method, "code": exc.code.name})
            context.set_trailing_metadata(_error_metadata(exc))
            await context.abort(exc.code, exc.message)
        logger.exception("unexpected error in %s", self._method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")

    def record(self, started: float, context: grpc.aio.ServicerContext) -> None:
        code = context.code()
        code_name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        RPC_REQUESTS.labels(self._owner._service, self._short, code_name).inc()
        if code_name != "OK":
            RPC_ERRORS.labels(self._owner._service, self._short, code_name).inc()
        RPC_LATENCY.labels(self._owner._service, self._short).observe(time.perf_counter() - started)

    def unary(self, behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                await self.enter()
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    raise
                await self.fail(exc, context)
            finally:
                self.record(started, context)

        return call

    def streaming(
        self, behavior: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                await self.enter()
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self.fail(exc, context)
            finally:
                self.record(started, context)

        return call


def _wrap(handler: grpc.RpcMethodHandler, wrapper: _Wrapper) -> grpc.RpcMethodHandler:
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrapper.unary(handler.unary_unary), **serializers
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrapper.unary(handler.stream_unary), **serializers
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrapper.streaming(handler.unary_stream), **serializers
        )
    return grpc.stream_stream_rpc_method_handler(
        wrapper.streaming(handler.stream_stream), **serializers
    )
