"""Outbound calls: channels, service tokens, and per-call deadline and metadata."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import json_format

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.context import principal_var, request_id_var
from gouache.runtime.errors import Unavailable, from_rpc_error
from gouache.runtime.tracing import client_interceptors


def open_channel(
    target: str,
    *,
    max_message_bytes: int = 64 * 1024 * 1024,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """An in-cluster channel with tracing, keepalive and large-message limits: plaintext, or
    TLS with credentials (ServiceSettings.channel_credentials() when mTLS is on)."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
    ]
    # Innermost, so it holds the real call the tracing interceptor awaits.
    interceptors = [*client_interceptors(), CancelAbandonedCalls()]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)


class CancelAbandonedCalls(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
):
    """Cancels the RPC when its caller is cancelled, even behind an interceptor that awaits it.

    grpc.aio runs a channel's interceptors in a task of their own. OpenTelemetry's waits
    there for the call's status (to record its code), so cancelling the caller cancels
    that task but not the RPC: the server went on computing until the call's deadline
    (a canceled job's inference ran for every step it was asked for). This interceptor,
    last in the chain, holds the real call and cancels it when that task is cancelled.
    """

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return _cancelled_with_task(await continuation(client_call_details, request))

    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return _cancelled_with_task(await continuation(client_call_details, request_iterator))


def _cancelled_with_task(call: Any) -> Any:
    task = asyncio.current_task()
    if task is not None:

        def cancel_call(done: asyncio.Task[Any]) -> None:
            if done.cancelled():
                call.cancel()

        task.add_done_callback(cancel_call)
    return call


def jwks_fetcher(channel: grpc.aio.Channel, *, timeout_s: float = 5.0) -> Any:
    """A TokenVerifier JWKS source that asks the auth service over gRPC."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)

    async def fetch() -> Sequence[Mapping[str, Any]]:
        response = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=timeout_s)
        return [
            json_format.MessageToDict(key, preserving_proto_field_name=True)
            for key in response.keys
        ]

    return fetch


class ServiceTokenSource:
    """A service's own access token, obtained with its API key and renewed before expiry."""

    def __init__(self, channel: grpc.aio.Channel, api_key: str, *, timeout_s: float = 10.0) -> None:
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._api_key = api_key
        self._timeout = timeout_s
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if time.monotonic() < self._expires_at - 60:
                return self._token
            if not self._api_key:
                raise Unavailable(
                    "this service has no API key configured for calls to other services"
                )
            try:
                response = await self._stub.IssueToken(
                    auth_pb2.IssueTokenRequest(
                        grant_type="client_credentials", api_key=self._api_key
                    ),
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc, context="could not get a service token") from exc
            self._token = response.access_token
            self._expires_at = time.monotonic() + response.expires_in
            return self._token


class CallOptions:
    """Deadline and metadata for every outbound call: a token and the current request id."""

    def __init__(self, tokens: ServiceTokenSource | None, timeout_s: float) -> None:
        self._tokens = tokens
        self._timeout = timeout_s

    async def __call__(
        self, *, timeout_s: float | None = None, as_caller: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments for a stub call.

        `as_caller` forwards the current caller's own token (so the callee enforces the
        caller's ownership); otherwise the service's token is used.
        """
        metadata: list[tuple[str, str]] = []
        principal = principal_var.get()
        if as_caller and principal is not None and principal.token:
            metadata.append(("authorization", f"Bearer {principal.token}"))
        elif self._tokens is not None:
            metadata.append(("authorization", f"Bearer {await self._tokens.token()}"))
        request_id = request_id_var.get()
        if request_id:
            metadata.append(("x-request-id", request_id))
        return {"timeout": timeout_s or self._timeout, "metadata": tuple(metadata)}
