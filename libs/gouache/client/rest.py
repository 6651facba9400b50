"""A small synchronous REST client for the public API (product requirements §11.1)."""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
# The longest single GET /v1/jobs/{id}:wait that wait() sends (the server allows 60 s).
LONG_POLL_S = 30.0
# A 429 is waited out this many times (for as long as its Retry-After says, up to
# MAX_RETRY_AFTER_S each time) before it reaches the caller.
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_S = 30.0


class ApiError(Exception):
    """A non-2xx answer: the HTTP status, the gRPC code number and the server's message."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class JobResult:
    job_id: str
    status: str
    model_version: str
    latency_ms: int
    result_url: str | None
    error: str | None
    raw: Mapping[str, Any]


class GouacheClient:
    """Talks to gouache over REST with an API key, renewing the access token as needed."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 60.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        # A long poll must end before the HTTP client gives up on it.
        self._long_poll_s = max(1.0, min(LONG_POLL_S, timeout_s - 5))
        self._api_key = api_key
        self._token = ""
        self._token_expires = 0.0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GouacheClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def token(self) -> str:
        """An access token for the API key, fetched from POST /v1/auth/token."""
        if time.monotonic() < self._token_expires - 30:
            return self._token
        body = self._request(
            "POST",
            "/v1/auth/token",
            json={"grant_type": "client_credentials", "api_key": self._api_key},
            auth=False,
        )
        self._token = str(body["access_token"])
        self._token_expires = time.monotonic() + int(body["expires_in"])
        return self._token

    def upload(
        self, data: bytes, *, filename: str, content_type: str | None = None, kind: str = "content"
    ) -> str:
        """Signs an upload, PUTs the bytes and returns the file URL to use in jobs."""
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        signed = self._request(
            "POST",
            "/v1/uploads/sign",
            json={"filename": filename, "content_type": content_type, "kind": kind},
        )
        response = self._http.put(
            str(signed["upload_url"]), content=data, headers={"content-type": content_type}
        )
        _raise_for_status(response)
        return str(signed["file_url"])

    def upload_file(self, path: Path, *, kind: str = "content") -> str:
        return self.upload(path.read_bytes(), filename=path.name, kind=kind)

    def create_job(
        self,
        content_url: str,
        style_urls: Sequence[str],
        *,
        model_version: str = "",
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """POST /v1/jobs; no_cache runs the model even when the result cache has an answer."""
        body: dict[str, Any] = {
            "content_url": content_url,
            "style_urls": list(style_urls),
            "model_version": model_version,
            "params": dict(params or {}),
        }
        if no_cache:
            body["no_cache"] = True
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/jobs", json=body, headers=headers)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/jobs/{job_id}:cancel", json={})

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        poll_s: float = 0.5,
        on_update: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> JobResult:
        """Waits until the job is final, or raises TimeoutError once timeout_s has passed.

        Without on_update it long-polls (GET /v1/jobs/{id}:wait, at most LONG_POLL_S per
        call), so the answer comes as soon as the job ends; with on_update it polls
        GET /v1/jobs/{id} every poll_s so the callback sees each state in between.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if on_update is None:
                remaining = deadline - time.monotonic()
                job = self.wait_job(job_id, timeout_s=max(0.1, min(self._long_poll_s, remaining)))
                if job.get("status") in FINAL_STATUSES:
                    return _result(job_id, job)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"job {job_id} still {job.get('status')} after {timeout_s:.0f} s"
                    )
                continue
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.get("status") in FINAL_STATUSES:
                return _result(job_id, job)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {job.get('status')} after {timeout_s:.0f} s"
                )
            time.sleep(poll_s)

    def wait_job(self, job_id: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """GET /v1/jobs/{job_id}:wait: the job once final, or as it is after timeout_s (<= 60)."""
        return self._request(
            "GET", f"/v1/jobs/{job_id}:wait", params={"timeout": f"{timeout_s:.3f}s"}
        )

    def create_batch(
        self,
        content_urls: Sequence[str],
        style_urls: Sequence[str],
        *,
        model_version: str = "",
        params: Mapping[str, Any] | None = None,
        lane: str = "",
        idempotency_key: str | None = None,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """POST /v1/batches: one job per content image, all with the same styles and params.

        The lane defaults to "export". With an idempotency key, sending the same batch again
        (after a timeout, a crash) returns it and creates only items still missing.
        """
        body: dict[str, Any] = {
            "content_urls": list(content_urls),
            "style_urls": list(style_urls),
            "model_version": model_version,
            "params": dict(params or {}),
        }
        if lane:
            body["lane"] = lane
        if no_cache:
            body["no_cache"] = True
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/batches", json=body, headers=headers)

    def get_batch(
        self, batch_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> dict[str, Any]:
        """GET /v1/batches/{id}: status, counts per job status and one page of items."""
        params = {"page_size": str(page_size)} if page_size else {}
        if page_token:
            params["page_token"] = page_token
        return self._request("GET", f"/v1/batches/{batch_id}", params=params)

    def batch_items(self, batch_id: str, *, page_size: int = 500) -> list[dict[str, Any]]:
        """Every item of a batch in request order (pages through GetBatch)."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self.get_batch(batch_id, page_size=page_size, page_token=token)
            items.extend(page.get("items", []))
            token = str(page.get("next_page_token", ""))
            if not token:
                return items

    def list_batches(self, *, page_size: int = 0, page_token: str = "") -> dict[str, Any]:
        """GET /v1/batches: the caller's batches, newest first (counts, no items)."""
        params = {"page_size": str(page_size)} if page_size else {}
        if page_token:
            params["page_token"] = page_token
        return self._request("GET", "/v1/batches", params=params)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """POST /v1/batches/{id}:cancel: cancels every item that is not final."""
        return self._request("POST", f"/v1/batches/{batch_id}:cancel", json={})

    def wait_batch(
        self,
        batch_id: str,
        *,
        timeout_s: float = 24 * 3600.0,
        poll_s: float = 2.0,
        on_update: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Polls GetBatch (counts only) every poll_s until the batch is final; returns it.

        on_update sees the batch (status and counts) after each poll, e.g. for a progress
        bar. Raises TimeoutError once timeout_s has passed.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.get_batch(batch_id, page_size=1)
            if on_update is not None:
                on_update(batch)
            if batch.get("status") not in (None, "", "running"):
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} still running after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def download(self, url: str) -> bytes:
        response = self._http.get(url)
        _raise_for_status(response)
        return response.content

    def submit_feedback(self, job_id: str, rating: int, comments: str = "") -> dict[str, Any]:
        return self._request(
            "POST", "/v1/feedback", json={"job_id": job_id, "rating": rating, "comments": comments}
        )

    def list_styles(self, *, curated: bool | None = None) -> list[dict[str, Any]]:
        params = {} if curated is None else {"curated": str(curated).lower()}
        return list(self._request("GET", "/v1/styles", params=params).get("styles", []))

    def list_models(self) -> dict[str, Any]:
        return self._request("GET", "/v1/models")

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        merged = dict(headers or {})
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            if auth:
                merged["authorization"] = f"Bearer {self.token()}"
            response = self._http.request(method, path, json=json, params=params, headers=merged)
            wait = _retry_after(response)
            if wait is None or attempt == RATE_LIMIT_RETRIES:
                break
            # Rate limited: the call was refused before anything happened, so any call
            # (a POST too) can be sent again once the limit allows it.
            time.sleep(wait)
        _raise_for_status(response)
        body: dict[str, Any] = response.json() if response.content else {}
        return body


def _result(job_id: str, job: dict[str, Any]) -> JobResult:
    return JobResult(
        job_id=job_id,
        status=str(job["status"]),
        model_version=str(job.get("model_version", "")),
        latency_ms=int(job.get("latency_ms", 0)),
        result_url=job.get("result_url"),
        error=job.get("error"),
        raw=job,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before sending a rate-limited call again: a 429 with Retry-After
    (other 429s, such as a credential's lockout, are not retried); None otherwise."""
    header = response.headers.get("retry-after")
    if response.status_code != 429 or header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = str(body.get("message", response.text))
        code = body.get("code")
    except ValueError:
        message, code = response.text, None
    raise ApiError(response.status_code, message, code if isinstance(code, int) else None)
