"""The gRPC clients of the public API: GouacheGrpcClient (blocking) and
AsyncGouacheGrpcClient, with the same calls and results as the REST clients.

One channel to the edge (h2c, or TLS with tls=True); the API key is exchanged for a bearer
token (AuthService.IssueToken, renewed before it expires) sent with every call. Requests
are built from gouache.client.operations, so they say what the REST ones say; errors are
gouache.client.errors.ApiError subclasses with the gRPC code and its HTTP equivalent.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from collections.abc import AsyncGenerator, Generator, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gouache.client import operations as ops
from gouache.client.async_api import AsyncApi
from gouache.client.errors import (
    ApiError,
    DeadlineExceededError,
    UnauthenticatedError,
    error_for,
)
from gouache.client.operations import Operation, message_json, response_class
from gouache.client.retry import RetryPolicy, acall_with_retries, call_with_retries
from gouache.client.sync_api import SyncApi
from gouache.client.tokens import TokenCache
from gouache.client.types import Job
from gouache.contracts.jobs.v1 import jobs_pb2
from gouache.contracts.storage.v1 import storage_pb2

T = TypeVar("T")
UPLOAD_CHUNK_BYTES = 256 * 1024
_WATCH = "/gouache.jobs.v1.JobsService/WatchJob"
_UPLOAD = "/gouache.storage.v1.StorageService/UploadImage"
_DOWNLOAD = "/gouache.storage.v1.StorageService/DownloadImage"


def grpc_error(error: grpc.RpcError) -> ApiError:
    """The ApiError of a failed call: its code, message, ErrorInfo reason and the
    retry-after it carried (trailing metadata, or a RetryInfo detail)."""
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = (details_of() if callable(details_of) else None) or str(code.name)
    trailing_of = getattr(error, "trailing_metadata", None)
    trailing = (trailing_of() if callable(trailing_of) else None) or ()
    retry_after: float | None = None
    reason: str | None = None
    for key, value in trailing:
        if key == "retry-after" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                retry_after = max(0.0, float(value))
        elif key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = reason or info.reason or None
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) and retry_after is None:
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    return error_for(None, message, int(code.value[0]), reason=reason, retry_after_s=retry_after)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _upload_parts(
    data: bytes, filename: str, content_type: str, kind: str
) -> Iterator[storage_pb2.UploadImageRequest]:
    header = storage_pb2.UploadImageHeader(filename=filename, content_type=content_type, kind=kind)
    yield storage_pb2.UploadImageRequest(header=header)
    for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
        yield storage_pb2.UploadImageRequest(chunk=data[start : start + UPLOAD_CHUNK_BYTES])


def _guess(filename: str, content_type: str | None) -> str:
    return content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"


class _Grpc:
    """What both gRPC clients hold: the API key, token, timeouts and retry policy."""

    def __init__(
        self,
        api_key: str,
        *,
        timeout_s: float,
        retry: RetryPolicy | None,
        refresh_margin_s: float,
        project: str = "",
    ) -> None:
        self._api_key = api_key
        # The project every call acts in ("": the personal project).
        self.project = project
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._tokens = TokenCache(refresh_margin_s=refresh_margin_s)

    @staticmethod
    def _metadata(token: str | None) -> Sequence[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),) if token else ()


def _credentials(tls: bool, root_certificates: bytes | None) -> grpc.ChannelCredentials | None:
    return grpc.ssl_channel_credentials(root_certificates=root_certificates) if tls else None


class GouacheGrpcClient(_Grpc, SyncApi):
    """The public API over native gRPC through the edge, blocking; the calls of
    GouacheClient (gouache.client.rest) with the same results and errors.

        with GouacheGrpcClient("127.0.0.1:8080", api_key) as client:
            url = client.upload(data, filename="cat.png")
            job = client.create_job(url, [style_id], model_version="adain")
            result = client.wait(job.job_id, progress=lambda j: print(j.progress))
    """

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        refresh_margin_s: float = 60.0,
        options: Sequence[tuple[str, Any]] = (),
        project: str = "",
    ) -> None:
        super().__init__(
            api_key,
            timeout_s=timeout_s,
            retry=retry,
            refresh_margin_s=refresh_margin_s,
            project=project,
        )
        credentials = _credentials(tls, root_certificates)
        self.channel = (
            grpc.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(target, options=options)
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GouacheGrpcClient:
        return self

    def token(self) -> str:
        """An access token for the API key (AuthService.IssueToken), renewed before expiry."""
        current = self._tokens.current(time.monotonic())
        if current is not None:
            return current
        issued_at = time.monotonic()
        return self._tokens.store(
            self._run(ops.issue_token(self._api_key, self.project)), issued_at
        )

    def _run(self, operation: Operation[T]) -> T:
        def attempt() -> T:
            return call_with_retries(
                self._retry, lambda: self._send(operation), repeatable=operation.repeatable
            )

        try:
            return attempt()
        except UnauthenticatedError:
            # The token was refused (revoked, or signed with a key auth no longer serves):
            # one more try with a fresh token. A refused API key is raised as it is.
            if not (operation.authenticated and self._tokens.forget()):
                raise
            return attempt()

    def _send(self, operation: Operation[T]) -> T:
        token = self.token() if operation.authenticated else None
        call = self.channel.unary_unary(
            operation.grpc_path,
            request_serializer=_serialize,
            response_deserializer=response_class(operation.service, operation.method).FromString,
        )
        try:
            reply = call(
                operation.grpc_request(),
                timeout=self._timeout_s + operation.held_s,
                metadata=self._metadata(token),
            )
        except grpc.RpcError as exc:
            raise grpc_error(exc) from None
        return operation.parse_grpc(reply)

    def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """Streams the image to StorageService.UploadImage; returns its file URL."""
        content_type = _guess(filename, content_type)
        call = self.channel.stream_unary(
            _UPLOAD,
            request_serializer=_serialize,
            response_deserializer=storage_pb2.UploadImageResponse.FromString,
        )

        def send() -> str:
            try:
                reply = call(
                    _upload_parts(data, filename, content_type, kind),
                    timeout=self._timeout_s,
                    metadata=self._metadata(self.token()),
                )
            except grpc.RpcError as exc:
                raise grpc_error(exc) from None
            return str(reply.image.file_url)

        # Sending the bytes again stores another copy, nothing worse: safe to repeat.
        return call_with_retries(self._retry, send, repeatable=True)

    def download_result(self, job: Job) -> bytes:
        """Streams the result image from StorageService.DownloadImage."""
        if not job.result_image_id:
            raise ValueError(f"job {job.job_id} is {job.status} and has no result to download")
        call = self.channel.unary_stream(
            _DOWNLOAD,
            request_serializer=_serialize,
            response_deserializer=storage_pb2.DownloadImageResponse.FromString,
        )

        def fetch() -> bytes:
            request = storage_pb2.DownloadImageRequest(image_id=job.result_image_id)
            metadata = self._metadata(self.token())
            try:
                parts: Iterable[storage_pb2.DownloadImageResponse] = call(
                    request, timeout=self._timeout_s, metadata=metadata
                )
                return b"".join(part.chunk for part in parts)
            except grpc.RpcError as exc:
                raise grpc_error(exc) from None

        return call_with_retries(self._retry, fetch, repeatable=True)

    def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> Generator[Job, None, None]:
        """JobsService.WatchJob; reconnects when the stream breaks before a final state."""
        call = self.channel.unary_stream(
            _WATCH,
            request_serializer=_serialize,
            response_deserializer=jobs_pb2.WatchJobResponse.FromString,
        )
        retry = 0
        while (remaining := deadline - time.monotonic()) > 0:
            stream = call(
                jobs_pb2.WatchJobRequest(job_id=job_id),
                timeout=remaining,
                metadata=self._metadata(self.token()),
            )
            try:
                for reply in stream:
                    job = Job.from_json(message_json(reply.job))
                    yield job
                    if job.final:
                        return
                # The stream ended before a final state (a replica stopped): watch again.
                time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
            except grpc.RpcError as exc:
                error = grpc_error(exc)
                if isinstance(error, DeadlineExceededError):
                    return
                delay = self._retry.delay_s(error, retry, repeatable=True)
                if delay is None:
                    raise error from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                retry += 1


class AsyncGouacheGrpcClient(_Grpc, AsyncApi):
    """GouacheGrpcClient for asyncio (a grpc.aio channel); the calls are awaited."""

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        refresh_margin_s: float = 60.0,
        options: Sequence[tuple[str, Any]] = (),
        project: str = "",
    ) -> None:
        super().__init__(
            api_key,
            timeout_s=timeout_s,
            retry=retry,
            refresh_margin_s=refresh_margin_s,
            project=project,
        )
        credentials = _credentials(tls, root_certificates)
        self.channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncGouacheGrpcClient:
        return self

    async def token(self) -> str:
        """As GouacheGrpcClient.token."""
        async with self._token_lock:
            current = self._tokens.current(time.monotonic())
            if current is not None:
                return current
            issued_at = time.monotonic()
            token = await self._run(ops.issue_token(self._api_key, self.project))
            return self._tokens.store(token, issued_at)

    async def _run(self, operation: Operation[T]) -> T:
        async def attempt() -> T:
            return await acall_with_retries(
                self._retry, lambda: self._send(operation), repeatable=operation.repeatable
            )

        try:
            return await attempt()
        except UnauthenticatedError:
            # As the blocking client: one more try with a fresh token.
            if not (operation.authenticated and self._tokens.forget()):
                raise
            return await attempt()

    async def _send(self, operation: Operation[T]) -> T:
        token = await self.token() if operation.authenticated else None
        call = self.channel.unary_unary(
            operation.grpc_path,
            request_serializer=_serialize,
            response_deserializer=response_class(operation.service, operation.method).FromString,
        )
        try:
            reply = await call(
                operation.grpc_request(),
                timeout=self._timeout_s + operation.held_s,
                metadata=self._metadata(token),
            )
        except grpc.RpcError as exc:
            raise grpc_error(exc) from None
        return operation.parse_grpc(reply)

    async def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """As GouacheGrpcClient.upload."""
        content_type = _guess(filename, content_type)
        call = self.channel.stream_unary(
            _UPLOAD,
            request_serializer=_serialize,
            response_deserializer=storage_pb2.UploadImageResponse.FromString,
        )

        async def send() -> str:
            try:
                reply = await call(
                    _upload_parts(data, filename, content_type, kind),
                    timeout=self._timeout_s,
                    metadata=self._metadata(await self.token()),
                )
            except grpc.RpcError as exc:
                raise grpc_error(exc) from None
            return str(reply.image.file_url)

        return await acall_with_retries(self._retry, send, repeatable=True)

    async def download_result(self, job: Job) -> bytes:
        """As GouacheGrpcClient.download_result."""
        if not job.result_image_id:
            raise ValueError(f"job {job.job_id} is {job.status} and has no result to download")
        call = self.channel.unary_stream(
            _DOWNLOAD,
            request_serializer=_serialize,
            response_deserializer=storage_pb2.DownloadImageResponse.FromString,
        )

        async def fetch() -> bytes:
            request = storage_pb2.DownloadImageRequest(image_id=job.result_image_id)
            metadata = self._metadata(await self.token())
            chunks: list[bytes] = []
            try:
                async for part in call(request, timeout=self._timeout_s, metadata=metadata):
                    chunks.append(part.chunk)
            except grpc.RpcError as exc:
                raise grpc_error(exc) from None
            return b"".join(chunks)

        return await acall_with_retries(self._retry, fetch, repeatable=True)

    async def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> AsyncGenerator[Job, None]:
        """As GouacheGrpcClient._job_updates."""
        call = self.channel.unary_stream(
            _WATCH,
            request_serializer=_serialize,
            response_deserializer=jobs_pb2.WatchJobResponse.FromString,
        )
        retry = 0
        while (remaining := deadline - time.monotonic()) > 0:
            metadata = self._metadata(await self.token())
            try:
                async for reply in call(
                    jobs_pb2.WatchJobRequest(job_id=job_id), timeout=remaining, metadata=metadata
                ):
                    job = Job.from_json(message_json(reply.job))
                    yield job
                    if job.final:
                        return
                await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
            except grpc.RpcError as exc:
                error = grpc_error(exc)
                if isinstance(error, DeadlineExceededError):
                    return
                delay = self._retry.delay_s(error, retry, repeatable=True)
                if delay is None:
                    raise error from None
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                retry += 1
