"""The REST clients' retries against a real HTTP server on 127.0.0.1 that answers 429/503.

The server plays a script per path (status, headers, body) and records when each request
came, so the tests check what was sent again, with what, and after how long.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from gouache.client import (
    AsyncGouacheClient,
    GouacheClient,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
)

TOKEN = {"access_token": "tok", "token_type": "Bearer", "expires_in": "3600"}
JOB = {"job_id": "job_1", "status": "running", "progress": 0.5, "latency_ms": "0"}
CREATED = {"job_id": "job_1", "status": "pending", "model_version": "adain.lite0-v1.1"}
UNAVAILABLE: tuple[int, dict[str, str], Any] = (
    503,
    {},
    {"code": 14, "message": "jobs is restarting"},
)
# No jitter and short waits: the n-th retry waits exactly 0.05 * 2**n s.
FAST = RetryPolicy(max_retries=3, initial_backoff_s=0.05, max_backoff_s=1.0, random=lambda: 1.0)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class ScriptedServer:
    """Answers each path from its script in order (the last answer repeats)."""

    script: dict[str, list[tuple[int, dict[str, str], Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    token_answer: tuple[int, dict[str, str], Any] = (200, {}, TOKEN)
    # How long the server takes to answer anything but a token.
    delay_s: float = 0.0

    def requests(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]

    def answer(self, path: str) -> tuple[int, dict[str, str], Any]:
        if path == "/v1/auth/token":
            return self.token_answer
        answers = self.script.get(path, [(404, {}, {"code": 5, "message": f"no {path}"})])
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            scripted.seen.append(
                Seen(
                    self.command,
                    path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                    time.monotonic(),
                )
            )
            status, headers, body = scripted.answer(path)
            if path != "/v1/auth/token":
                time.sleep(scripted.delay_s)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            kind = "text/plain" if isinstance(body, str) else "application/json"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *_: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    scripted.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield scripted
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _gaps(requests: list[Seen]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]


def test_backoff_doubles_up_to_its_ceiling_with_full_jitter() -> None:
    top = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=3.0, random=lambda: 1.0)
    assert [top.backoff_s(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert RetryPolicy(random=lambda: 0.0).backoff_s(3) == 0.0
    jittered = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=10.0)
    waits = {jittered.backoff_s(2) for _ in range(50)}
    assert all(0 <= wait <= 4.0 for wait in waits)
    assert len(waits) > 1
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)


def test_a_503_read_is_retried_with_growing_waits(server: ScriptedServer) -> None:
    server.script["/v1/jobs/job_1"] = [UNAVAILABLE, UNAVAILABLE, (200, {}, JOB)]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client:
        job = client.get_job("job_1")
    assert (job.job_id, job.status, job.progress) == ("job_1", "running", 0.5)
    calls = server.requests("/v1/jobs/job_1")
    assert len(calls) == 3
    first, second = _gaps(calls)
    assert first >= 0.05
    assert second >= 0.1
    assert calls[0].headers["authorization"] == "Bearer tok"


def test_retries_stop_after_max_retries(server: ScriptedServer) -> None:
    server.script["/v1/jobs/job_1"] = [UNAVAILABLE]
    with (
        GouacheClient(server.url, "gk_x", retry=FAST) as client,
        pytest.raises(UnavailableError) as caught,
    ):
        client.get_job("job_1")
    assert len(server.requests("/v1/jobs/job_1")) == FAST.max_retries + 1
    assert (caught.value.status, caught.value.code) == (503, 14)
    assert "jobs is restarting" in str(caught.value)


def test_429_waits_for_retry_after_even_for_a_create_without_key(server: ScriptedServer) -> None:
    limited = (429, {"retry-after": "1"}, {"code": 8, "message": "rate limit of 60 exceeded"})
    server.script["/v1/jobs"] = [limited, (200, {}, CREATED)]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client:
        created = client.create_job("c", ["s"], idempotency_key="")
    assert created.job_id == "job_1"
    assert created["status"] == "pending"
    calls = server.requests("/v1/jobs")
    assert len(calls) == 2
    assert _gaps(calls)[0] >= 1.0
    assert "idempotency_key" not in calls[0].body


def test_a_503_create_is_retried_only_with_an_idempotency_key(server: ScriptedServer) -> None:
    server.script["/v1/jobs"] = [UNAVAILABLE, (200, {}, CREATED)]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client:
        client.create_job("c", {"s1": 0.7, "s2": 0.3}, alpha=0.8, preserve_color=True)
    first, second = server.requests("/v1/jobs")
    assert first.body == second.body
    assert first.body["idempotency_key"].startswith("sdk-")
    assert first.body["style_urls"] == ["s1", "s2"]
    assert first.body["params"] == {"weights": [0.7, 0.3], "alpha": 0.8, "luminance_only": True}
    server.seen.clear()
    server.script["/v1/jobs"] = [UNAVAILABLE, (200, {}, CREATED)]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client, pytest.raises(UnavailableError):
        client.create_job("c", ["s"], idempotency_key="")
    assert len(server.requests("/v1/jobs")) == 1


@pytest.mark.parametrize(
    "answer",
    [
        (429, {}, {"code": 8, "message": "too many failed attempts; retry in 300 s"}),
        (429, {"retry-after": "120"}, {"code": 8, "message": "rate limit exceeded"}),
    ],
    ids=["no-retry-after", "retry-after-too-long"],
)
def test_a_429_that_waiting_would_not_fix_is_raised_at_once(
    server: ScriptedServer, answer: tuple[int, dict[str, str], Any]
) -> None:
    server.script["/v1/models"] = [answer]
    with (
        GouacheClient(server.url, "gk_x", retry=FAST) as client,
        pytest.raises(RateLimitedError) as caught,
    ):
        client.list_models()
    assert len(server.requests("/v1/models")) == 1
    assert caught.value.status == 429


def test_errors_are_typed_with_status_code_and_reason(server: ScriptedServer) -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "job_not_found"}
    server.script["/v1/jobs/job_9"] = [
        (404, {}, {"code": 5, "message": "no job job_9", "details": [info]})
    ]
    server.script["/v1/uploads/sign"] = [(415, {}, "unsupported media type")]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get_job("job_9")
        assert (missing.value.status, missing.value.code) == (404, 5)
        assert missing.value.reason == "job_not_found"
        assert missing.value.message == "no job job_9"
        with pytest.raises(InvalidArgumentError) as refused:
            client.upload(b"x", filename="a.txt")
        assert refused.value.status == 415
        assert "unsupported media type" in refused.value.message


def test_no_server_is_retried_then_raised_as_the_httpx_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    # Retried like a 503, then raised as what it is, so callers can say "nothing listens".
    with (
        GouacheClient(f"http://127.0.0.1:{port}", "gk_x", retry=FAST) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.list_models()
    # The token call itself is retried: 0.05 + 0.1 + 0.2 s of backoff at least.
    assert time.monotonic() - started >= 0.35


async def test_the_async_client_retries_the_same_way(server: ScriptedServer) -> None:
    limited = (429, {"retry-after": "1"}, {"code": 8, "message": "rate limited"})
    server.script["/v1/jobs/job_1"] = [UNAVAILABLE, limited, (200, {}, JOB)]
    async with AsyncGouacheClient(server.url, "gk_x", retry=FAST) as client:
        job = await client.get_job("job_1")
        assert job.status == "running"
        server.script["/v1/jobs"] = [UNAVAILABLE]
        with pytest.raises(UnavailableError):
            await client.create_job("c", ["s"], idempotency_key="")
    first, second = _gaps(server.requests("/v1/jobs/job_1"))
    assert first >= 0.05
    assert second >= 1.0
    assert len(server.requests("/v1/jobs")) == 1


def test_a_refused_token_is_renewed_once_and_a_refused_key_is_raised(
    server: ScriptedServer,
) -> None:
    refused = (401, {}, {"code": 16, "message": "token signed with an unknown key"})
    server.script["/v1/models"] = [(200, {}, {}), refused, (200, {}, {})]
    with GouacheClient(server.url, "gk_x", retry=FAST) as client:
        client.list_models()
        client.list_models()
    assert len(server.requests("/v1/auth/token")) == 2
    assert len(server.requests("/v1/models")) == 3
    server.seen.clear()
    server.script["/v1/models"] = [refused]
    with (
        GouacheClient(server.url, "gk_x", retry=FAST) as client,
        pytest.raises(UnauthenticatedError),
    ):
        client.list_models()
    # Renewed once, refused again: raised, not a loop.
    assert len(server.requests("/v1/models")) == 2
    assert len(server.requests("/v1/auth/token")) == 2


def test_a_refused_api_key_is_asked_once(server: ScriptedServer) -> None:
    server.token_answer = (401, {}, {"code": 16, "message": "unknown API key"})
    with (
        GouacheClient(server.url, "gk_wrong", retry=FAST) as client,
        pytest.raises(UnauthenticatedError, match="unknown API key"),
    ):
        client.list_models()
    assert len(server.requests("/v1/auth/token")) == 1
    assert server.requests("/v1/models") == []


def test_a_long_poll_gets_its_wait_on_top_of_the_timeout(server: ScriptedServer) -> None:
    slow = (200, {}, JOB)
    server.script["/v1/jobs/job_1:wait"] = [slow]
    server.delay_s = 1.5
    # A 1 s timeout would cut a 1.5 s answer; the long poll's 2 s are added to it.
    with GouacheClient(server.url, "gk_x", timeout_s=1.0, retry=FAST) as client:
        assert client.wait_job("job_1", timeout_s=2).status == "running"
    assert len(server.requests("/v1/jobs/job_1:wait")) == 1
