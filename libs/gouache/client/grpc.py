"""A small synchronous gRPC client for partners: the public services through the Envoy edge."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import grpc

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.contracts.feedback.v1 import feedback_pb2_grpc
from gouache.contracts.jobs.v1 import jobs_pb2_grpc
from gouache.contracts.storage.v1 import storage_pb2, storage_pb2_grpc

UPLOAD_CHUNK_BYTES = 256 * 1024


class BearerTokens:
    """Access tokens for an API key from AuthService.IssueToken, renewed before they expire:
    refresh_margin_s ahead, or at half their lifetime for shorter tokens."""

    def __init__(
        self,
        auth: auth_pb2_grpc.AuthServiceStub,
        api_key: str,
        *,
        timeout_s: float,
        refresh_margin_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        project: str = "",
    ) -> None:
        self._auth = auth
        self._api_key = api_key
        self._project = project
        self._timeout_s = timeout_s
        self._margin_s = refresh_margin_s
        self._clock = clock
        self._token = ""
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if not self._token or self._clock() >= self._renew_at:
                issued_at = self._clock()
                reply = self._auth.IssueToken(
                    auth_pb2.IssueTokenRequest(
                        grant_type="client_credentials",
                        api_key=self._api_key,
                        project=self._project,
                    ),
                    timeout=self._timeout_s,
                )
                self._token = reply.access_token
                self._renew_at = (
                    issued_at + reply.expires_in - min(self._margin_s, reply.expires_in / 2)
                )
            return self._token


class GouacheGrpc:
    """One channel to the edge (h2c, or TLS with tls=True), the API key exchanged for a
    bearer token that every call carries, and typed stubs for the public services:
    `auth`, `storage`, `jobs`, `feedback`.

        with GouacheGrpc("api.example.com:443", key, tls=True) as gouache:
            models = gouache.jobs.ListModels(jobs_pb2.ListModelsRequest(), timeout=10)
    """

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout_s: float = 30.0,
        refresh_margin_s: float = 60.0,
        options: Sequence[tuple[str, Any]] = (),
        clock: Callable[[], float] = time.monotonic,
        project: str = "",
    ) -> None:
        if tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._raw = grpc.secure_channel(target, credentials, options=options)
        else:
            self._raw = grpc.insecure_channel(target, options=options)
        self.tokens = BearerTokens(
            auth_pb2_grpc.AuthServiceStub(self._raw),
            api_key,
            timeout_s=timeout_s,
            refresh_margin_s=refresh_margin_s,
            clock=clock,
            project=project,
        )
        self.channel = grpc.intercept_channel(self._raw, _Bearer(self.tokens.token))
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.storage = storage_pb2_grpc.StorageServiceStub(self.channel)
        self.jobs = jobs_pb2_grpc.JobsServiceStub(self.channel)
        self.feedback = feedback_pb2_grpc.FeedbackServiceStub(self.channel)
        self.timeout_s = timeout_s

    def upload_image(
        self,
        data: bytes,
        *,
        filename: str,
        content_type: str,
        kind: str = "content",
        chunk_bytes: int = UPLOAD_CHUNK_BYTES,
    ) -> storage_pb2.Image:
        """Streams an image to StorageService.UploadImage: a header, then the bytes."""

        def parts() -> Iterator[storage_pb2.UploadImageRequest]:
            header = storage_pb2.UploadImageHeader(
                filename=filename, content_type=content_type, kind=kind
            )
            yield storage_pb2.UploadImageRequest(header=header)
            for start in range(0, len(data), chunk_bytes):
                yield storage_pb2.UploadImageRequest(chunk=data[start : start + chunk_bytes])

        reply = self.storage.UploadImage(parts(), timeout=self.timeout_s)
        image: storage_pb2.Image = reply.image
        return image

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> GouacheGrpc:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _CallDetails(_Details, grpc.ClientCallDetails):  # type: ignore[misc]
    """ClientCallDetails with new metadata (the interface has no constructor of its own)."""


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization: Bearer <token>` to every call that does not carry one."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if not any(key.lower() == "authorization" for key, _ in metadata):
            metadata.append(("authorization", f"Bearer {self._token()}"))
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)
