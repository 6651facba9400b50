"""Server-sent events from the REST API (`GET /v1/jobs/{job_id}:events`) read from httpx.

The edge streams `JobsService.WatchJob` as `text/event-stream`: one event per change of the
job, its data the JSON of a WatchJobResponse, `{"job": {...}}` (the Job as GetJob answers
it), and the stream ends after the job's final state. How a client uses it::

    path = JOB_EVENTS_PATH.format(job_id=job_id)
    with http.stream("GET", path, headers={"authorization": f"Bearer {token}"},
                     timeout=httpx.Timeout(10.0, read=None)) as response:
        if response.status_code != 200:        # an error is JSON, as for every other call
            response.read()
            raise_api_error(response)          # the caller's own error mapping
        for job in iter_job_updates(response):  # dicts, in order, the last one final
            progress(job["status"], job["progress"])

`aiter_job_updates` is the same for an `httpx.AsyncClient` stream. Lower down,
`iter_events`/`aiter_events` yield each event's data as a dict and `iter_sse`/`aiter_sse`
the raw `ServerSentEvent`s; `EventStreamDecoder` is the incremental parser under all of
them (the WHATWG HTML "event stream" rules), with no I/O.

An error after the first event (the jobs replica stopped, the connection was cut) cannot
change the 200 already sent: the stream just ends, or the connection breaks.
`iter_job_updates` raises `StreamCut` for both, with the last state seen, so that the
caller can reconnect or fall back to polling (the lower-level readers let httpx's
`TransportError` through).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from gouache.client.types import FINAL_STATUSES

JOB_EVENTS_PATH = "/v1/jobs/{job_id}:events"
EVENT_STREAM = "text/event-stream"
_DEFAULT_EVENT = "message"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its type, its data (data lines joined by newlines), the last
    event id seen so far and the reconnection time the server asked for, if any."""

    data: str
    event: str = _DEFAULT_EVENT
    id: str | None = None
    retry_ms: int | None = None

    def json(self) -> dict[str, Any]:
        """The data as a JSON object, or EventStreamError when it is not one."""
        try:
            value = json.loads(self.data)
        except json.JSONDecodeError as exc:
            raise EventStreamError(f"event data is not JSON ({exc}): {self.data[:200]!r}") from exc
        if not isinstance(value, dict):
            raise EventStreamError(f"event data is not a JSON object: {self.data[:200]!r}")
        return value


class EventStreamError(Exception):
    """The answer is not an event stream, or an event in it is not what the API sends."""


class StreamCut(EventStreamError):
    """A job's event stream ended before the job's final state; `last` is the last job state
    received (None when not even one arrived)."""

    def __init__(self, job_id: str | None, last: dict[str, Any] | None) -> None:
        status = last.get("status") if last else None
        super().__init__(
            f"the event stream of job {job_id or '?'} ended before a final state "
            f"(last status: {status or 'none'}); reconnect, or ask GET /v1/jobs/{{job_id}}"
        )
        self.job_id = job_id
        self.last = last


class EventStreamDecoder:
    """Turns the text of an event stream, in pieces of any size, into events.

    Lines end with CRLF, LF or CR (a CR at the end of one piece and an LF at the start of
    the next are one line end); a blank line dispatches the event; lines starting with ":"
    are comments (keep-alives); "data" lines accumulate; "event", "id" and "retry" set the
    event's type, the last event id and the reconnection time. An event with no data is not
    dispatched, nor is an unfinished event when the stream ends."""

    def __init__(self) -> None:
        self._pending = ""
        self._after_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        self._retry_ms: int | None = None

    def feed(self, text: str) -> list[ServerSentEvent]:
        """The events completed by text."""
        if not text:  # e.g. a chunk that ended inside a UTF-8 sequence: nothing to do yet
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = (self._pending + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._pending = lines.pop()
        return [event for line in lines if (event := self._line(line)) is not None]

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data),
            event=event or _DEFAULT_EVENT,
            id=self._last_id,
            retry_ms=self._retry_ms,
        )


def iter_sse(response: httpx.Response) -> Iterator[ServerSentEvent]:
    """The events of a streamed response (opened with `client.stream(...)`), as they arrive."""
    _check_event_stream(response)
    decoder = EventStreamDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in response.iter_bytes():
        yield from decoder.feed(text.decode(chunk))
    yield from decoder.feed(text.decode(b"", final=True))


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """iter_sse for a response of an httpx.AsyncClient."""
    _check_event_stream(response)
    decoder = EventStreamDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(text.decode(chunk)):
            yield event
    for event in decoder.feed(text.decode(b"", final=True)):
        yield event


def iter_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The data of each "message" event as a dict (other event types are skipped)."""
    return (event.json() for event in iter_sse(response) if event.event == _DEFAULT_EVENT)


async def aiter_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """iter_events for a response of an httpx.AsyncClient."""
    async for event in aiter_sse(response):
        if event.event == _DEFAULT_EVENT:
            yield event.json()


def iter_job_updates(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Each state of the job, as GetJob answers it, ending with the final one; StreamCut
    when the stream ends before a final state, or the connection breaks (the jobs replica
    or the edge restarted, the network dropped), with the httpx error as its cause."""
    last: dict[str, Any] | None = None
    try:
        for data in iter_events(response):
            last = _job(data)
            yield last
    except httpx.TransportError as exc:
        raise StreamCut(_requested_job_id(response), last) from exc
    _check_final(last, _requested_job_id(response))


async def aiter_job_updates(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """iter_job_updates for a response of an httpx.AsyncClient."""
    last: dict[str, Any] | None = None
    try:
        async for data in aiter_events(response):
            last = _job(data)
            yield last
    except httpx.TransportError as exc:
        raise StreamCut(_requested_job_id(response), last) from exc
    _check_final(last, _requested_job_id(response))


def _job(data: dict[str, Any]) -> dict[str, Any]:
    job = data.get("job")
    if not isinstance(job, dict):
        raise EventStreamError(f"event without a job: {json.dumps(data)[:200]}")
    return job


def _check_final(last: dict[str, Any] | None, job_id: str | None) -> None:
    if last is None or last.get("status") not in FINAL_STATUSES:
        raise StreamCut(job_id, last)


def _requested_job_id(response: httpx.Response) -> str | None:
    """The job id in the path the stream was opened on, for messages."""
    path = response.request.url.path
    if not (path.startswith("/v1/jobs/") and path.endswith(":events")):
        return None
    return path.removeprefix("/v1/jobs/").removesuffix(":events") or None


def _check_event_stream(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != EVENT_STREAM:
        raise EventStreamError(
            f"HTTP {response.status_code} answered {content_type or 'no content type'}, "
            f"not {EVENT_STREAM}: check the status before reading events"
        )
