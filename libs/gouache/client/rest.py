"""The REST clients of the public API: GouacheClient (blocking) and AsyncGouacheClient.

Both exchange an API key for an access token (POST /v1/auth/token, renewed before it
expires), send the operations of gouache.client.operations through the edge, retry what
gouache.client.retry allows, and raise gouache.client.errors.ApiError subclasses.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Mapping,
)
from typing import Any, TypeVar

import httpx

from gouache.client import operations as ops
from gouache.client.async_api import AsyncApi
from gouache.client.errors import (
    UNAVAILABLE,
    ApiError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
    error_for,
    reason_of,
)
from gouache.client.events import (
    JOB_EVENTS_PATH,
    EventStreamError,
    aiter_job_updates,
    iter_job_updates,
)
from gouache.client.operations import Operation
from gouache.client.retry import RetryPolicy, acall_with_retries, call_with_retries
from gouache.client.sync_api import SyncApi
from gouache.client.tokens import TokenCache
from gouache.client.types import FINAL_STATUSES, Job, JobResult

__all__ = ["FINAL_STATUSES", "ApiError", "AsyncGouacheClient", "GouacheClient", "JobResult"]

T = TypeVar("T")
# The longest single GET /v1/jobs/{id}:wait that wait() sends (the server allows 60 s).
LONG_POLL_S = 30.0


def _content_type(filename: str, content_type: str | None) -> str:
    return content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _retry_after(response: httpx.Response) -> float | None:
    header = response.headers.get("retry-after")
    try:
        return None if header is None else max(0.0, float(header))
    except ValueError:
        return None


def rest_error(response: httpx.Response) -> ApiError:
    """The ApiError of a non-2xx answer: the JSON error body when there is one (code,
    message, details), else the status and text (a proxy's own error page)."""
    message, code, details = response.text.strip(), None, []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = str(body.get("message", message))
        code = body.get("code") if isinstance(body.get("code"), int) else None
        details = [d for d in body.get("details") or [] if isinstance(d, dict)]
    return error_for(
        response.status_code,
        message or response.reason_phrase,
        code,
        reason=reason_of(details),
        retry_after_s=_retry_after(response),
        details=details,
    )


def _raise_for_status(response: httpx.Response) -> None:
    if not response.is_success:
        raise rest_error(response)


class _NoAnswer(UnavailableError):
    """No HTTP answer at all (connection refused or reset, a timeout): retried like a 503
    for calls safe to repeat, then raised as the httpx error it was (`transport_error`), as
    the REST client always has, so callers may tell "the edge is not there" apart."""

    def __init__(self, base_url: str, exc: httpx.TransportError) -> None:
        super().__init__(
            503, f"no answer from {base_url}: {type(exc).__name__}: {exc}", UNAVAILABLE
        )
        self.transport_error = exc


def _unreachable(base_url: str, exc: httpx.TransportError) -> _NoAnswer:
    return _NoAnswer(base_url, exc)


def _retrying(policy: RetryPolicy, attempt: Callable[[], T], *, repeatable: bool) -> T:
    try:
        return call_with_retries(policy, attempt, repeatable=repeatable)
    except _NoAnswer as failed:
        raise failed.transport_error from None


async def _aretrying(
    policy: RetryPolicy, attempt: Callable[[], Awaitable[T]], *, repeatable: bool
) -> T:
    try:
        return await acall_with_retries(policy, attempt, repeatable=repeatable)
    except _NoAnswer as failed:
        raise failed.transport_error from None


def _body(response: httpx.Response) -> Mapping[str, Any]:
    if not response.content:
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {}


class _Rest:
    """What both REST clients hold: where the API is, the token, the retry policy."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        retry: RetryPolicy | None,
        project: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # The project every call acts in ("": the personal project).
        self.project = project
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._tokens = TokenCache(refresh_margin_s=30.0)
        # Each long poll waits this long at most; its HTTP timeout is timeout_s more.
        self._long_poll_s = LONG_POLL_S

    def _headers(self, token: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"} if token else {}

    def _send_args(self, operation: Operation[Any], token: str | None) -> dict[str, Any]:
        request = operation.rest()
        return {
            "method": request.method,
            "url": request.path,
            "params": request.params or None,
            "json": request.json,
            "headers": self._headers(token),
            "timeout": self._timeout_s + operation.held_s,
        }


class GouacheClient(_Rest, SyncApi):
    """The REST API with an API key, blocking.

        with GouacheClient("http://127.0.0.1:8080", api_key) as client:
            job = client.create_job(client.upload_file(Path("cat.png")), [style_id])
            result = client.wait(job.job_id, progress=lambda j: print(j.status, j.progress))
            Path("out.png").write_bytes(client.download_result(result))

    timeout_s bounds each HTTP request; retry says what is sent again (RetryPolicy();
    retry.NO_RETRIES for none); project names the shared project the calls act in (its
    "prj_..." id; by default the key owner's personal project).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        project: str = "",
    ) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s, retry=retry, project=project)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GouacheClient:
        return self

    def token(self) -> str:
        """An access token for the API key (POST /v1/auth/token), renewed before expiry."""
        current = self._tokens.current(time.monotonic())
        if current is not None:
            return current
        issued_at = time.monotonic()
        return self._tokens.store(
            self._run(ops.issue_token(self._api_key, self.project)), issued_at
        )

    def _run(self, operation: Operation[T]) -> T:
        def attempt() -> T:
            return _retrying(
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
        try:
            response = self._http.request(**self._send_args(operation, token))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        _raise_for_status(response)
        return operation.parse(_body(response))

    def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """Signs an upload, PUTs the bytes to it and returns the file URL to use in jobs."""
        content_type = _content_type(filename, content_type)
        signed = self._run(ops.sign_upload(filename, content_type, kind))

        def put() -> None:
            try:
                response = self._http.put(
                    str(signed["upload_url"]), content=data, headers={"content-type": content_type}
                )
            except httpx.TransportError as exc:
                raise _unreachable(self.base_url, exc) from exc
            _raise_for_status(response)

        # A PUT to the same signed URL stores the same image: safe to repeat.
        _retrying(self._retry, put, repeatable=True)
        return str(signed["file_url"])

    def download(self, url: str) -> bytes:
        """The bytes at a signed URL (a job's result_url)."""

        def get() -> bytes:
            try:
                response = self._http.get(url)
            except httpx.TransportError as exc:
                raise _unreachable(self.base_url, exc) from exc
            _raise_for_status(response)
            return response.content

        return _retrying(self._retry, get, repeatable=True)

    def download_result(self, job: Job) -> bytes:
        if not job.result_url:
            raise ValueError(f"job {job.job_id} is {job.status} and has no result to download")
        return self.download(job.result_url)

    def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> Generator[Job, None, None]:
        if detailed:
            streamed = yield from self._streamed(job_id, deadline)
            if streamed:
                return
        # No event stream (or it ended early): long polls, or GetJob for every change.
        while (remaining := deadline - time.monotonic()) > 0:
            if detailed:
                job = self.get_job(job_id)
            else:
                job = self.wait_job(job_id, timeout_s=max(0.1, min(self._long_poll_s, remaining)))
            yield job
            if job.final:
                return
            if detailed:
                time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    def _streamed(self, job_id: str, deadline: float) -> Generator[Job, None, bool]:
        """The job's event stream (GET /v1/jobs/{id}:events) until its final state; returns
        False when the stream is unavailable or cut, for the caller to poll instead."""
        path = JOB_EVENTS_PATH.format(job_id=job_id)
        remaining = deadline - time.monotonic()
        timeout = httpx.Timeout(self._timeout_s, read=max(0.1, remaining))
        try:
            with self._http.stream(
                "GET", path, headers=self._headers(self.token()), timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    error = rest_error(response)
                    if isinstance(error, NotFoundError | UnavailableError):
                        return False  # an edge without the stream, or one restarting
                    raise error
                for data in iter_job_updates(response):
                    yield Job.from_json(data)
                return True
        except (EventStreamError, httpx.TransportError):
            return False


class AsyncGouacheClient(_Rest, AsyncApi):
    """The REST API with an API key, for asyncio (the calls of GouacheClient, awaited).

    async with AsyncGouacheClient("http://127.0.0.1:8080", api_key) as client:
        job = await client.create_job(await client.upload(data, filename="cat.png"), [s])
        result = await client.wait(job.job_id, progress=show)
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        project: str = "",
    ) -> None:
        super().__init__(base_url, api_key, timeout_s=timeout_s, retry=retry, project=project)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport
        )
        self._token_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGouacheClient:
        return self

    async def token(self) -> str:
        """As GouacheClient.token."""
        async with self._token_lock:
            current = self._tokens.current(time.monotonic())
            if current is not None:
                return current
            issued_at = time.monotonic()
            token = await self._run(ops.issue_token(self._api_key, self.project))
            return self._tokens.store(token, issued_at)

    async def _run(self, operation: Operation[T]) -> T:
        async def attempt() -> T:
            return await _aretrying(
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
        try:
            response = await self._http.request(**self._send_args(operation, token))
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc
        _raise_for_status(response)
        return operation.parse(_body(response))

    async def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """As GouacheClient.upload."""
        content_type = _content_type(filename, content_type)
        signed = await self._run(ops.sign_upload(filename, content_type, kind))

        async def put() -> None:
            try:
                response = await self._http.put(
                    str(signed["upload_url"]), content=data, headers={"content-type": content_type}
                )
            except httpx.TransportError as exc:
                raise _unreachable(self.base_url, exc) from exc
            _raise_for_status(response)

        await _aretrying(self._retry, put, repeatable=True)
        return str(signed["file_url"])

    async def download(self, url: str) -> bytes:
        """As GouacheClient.download."""

        async def get() -> bytes:
            try:
                response = await self._http.get(url)
            except httpx.TransportError as exc:
                raise _unreachable(self.base_url, exc) from exc
            _raise_for_status(response)
            return response.content

        return await _aretrying(self._retry, get, repeatable=True)

    async def download_result(self, job: Job) -> bytes:
        if not job.result_url:
            raise ValueError(f"job {job.job_id} is {job.status} and has no result to download")
        return await self.download(job.result_url)

    async def _job_updates(
        self, job_id: str, *, deadline: float, detailed: bool, poll_s: float
    ) -> AsyncGenerator[Job, None]:
        if detailed:
            finished = False
            async for job in self._streamed(job_id, deadline):
                yield job
                finished = job.final
            if finished:
                return
        while (remaining := deadline - time.monotonic()) > 0:
            if detailed:
                job = await self.get_job(job_id)
            else:
                job = await self.wait_job(
                    job_id, timeout_s=max(0.1, min(self._long_poll_s, remaining))
                )
            yield job
            if job.final:
                return
            if detailed:
                await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    async def _streamed(self, job_id: str, deadline: float) -> AsyncGenerator[Job, None]:
        """As GouacheClient._streamed: ends early (the caller polls on) when the stream is
        unavailable or cut."""
        path = JOB_EVENTS_PATH.format(job_id=job_id)
        remaining = deadline - time.monotonic()
        timeout = httpx.Timeout(self._timeout_s, read=max(0.1, remaining))
        try:
            async with self._http.stream(
                "GET", path, headers=self._headers(await self.token()), timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    error = rest_error(response)
                    if isinstance(error, NotFoundError | UnavailableError):
                        return
                    raise error
                async for data in aiter_job_updates(response):
                    yield Job.from_json(data)
        except (EventStreamError, httpx.TransportError):
            return
