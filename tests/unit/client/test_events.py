"""The SDK's event-stream reader: the WHATWG parsing rules, pieces split anywhere, job updates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

from gouache.client.events import (
    JOB_EVENTS_PATH,
    EventStreamDecoder,
    EventStreamError,
    ServerSentEvent,
    StreamCut,
    aiter_events,
    aiter_job_updates,
    iter_events,
    iter_job_updates,
    iter_sse,
)

SSE = {"content-type": "text/event-stream"}


def _decode(*pieces: str) -> list[ServerSentEvent]:
    decoder = EventStreamDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def _job_event(status: str, progress: float = 0.0) -> bytes:
    job = {"job_id": "job_1", "status": status, "progress": progress}
    return f"data: {json.dumps({'job': job}, separators=(',', ':'))}\n\n".encode()


@contextmanager
def _sync_response(chunks: list[bytes], headers: dict[str, str] = SSE) -> Iterator[httpx.Response]:
    """A streamed response whose body arrives in exactly these pieces."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=iter(chunks))

    transport = httpx.MockTransport(handler)
    with (
        httpx.Client(transport=transport, base_url="http://edge") as client,
        client.stream("GET", JOB_EVENTS_PATH.format(job_id="job_1")) as response,
    ):
        yield response


@asynccontextmanager
async def _async_response(chunks: list[bytes]) -> AsyncIterator[httpx.Response]:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, content=body())

    transport = httpx.MockTransport(handler)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://edge") as client,
        client.stream("GET", JOB_EVENTS_PATH.format(job_id="job_1")) as response,
    ):
        yield response


def test_data_lines_make_one_event_per_blank_line() -> None:
    events = _decode('data: {"a":1}\n\ndata: {"a":2}\n\n')

    assert [event.json() for event in events] == [{"a": 1}, {"a": 2}]
    assert events[0] == ServerSentEvent(data='{"a":1}')


def test_fields_comments_and_multiline_data() -> None:
    text = (
        ": keep-alive\n"
        "event: progress\n"
        "id: 7\n"
        "retry: 2500\n"
        "data:first\n"
        "data:  second\n"
        "data\n"
        "unknown: ignored\n"
        "\n"
    )

    (event,) = _decode(text)

    # One space after the colon is dropped, no more; "data" alone is an empty data line.
    assert event == ServerSentEvent(
        data="first\n second\n", event="progress", id="7", retry_ms=2500
    )


def test_id_and_retry_carry_over_and_bad_values_are_ignored() -> None:
    events = _decode("id: 1\nretry: 10\ndata: a\n\nid: x\0y\nretry: 1s\ndata: b\n\n")

    assert [(event.id, event.retry_ms) for event in events] == [("1", 10), ("1", 10)]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_end_the_standard_allows(newline: str) -> None:
    text = f"data: a{newline}data: b{newline}{newline}data: c{newline}{newline}"

    assert [event.data for event in _decode(text)] == ["a\nb", "c"]


def test_pieces_split_anywhere_give_the_same_events() -> None:
    text = "\ufeffdata: one\r\n\r\n: comment\r\ndata: two\r\ndata: three\r\n\r\n"
    whole = _decode(text)

    for size in range(1, len(text)):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert _decode(*pieces) == whole, size
    assert [event.data for event in whole] == ["one", "two\nthree"]


def test_a_cr_and_its_lf_in_different_pieces_are_one_line_end() -> None:
    assert [event.data for event in _decode("data: a\r", "\n\r", "\n")] == ["a"]
    # An empty piece between them (a chunk that ended inside a UTF-8 sequence) changes nothing.
    assert [event.data for event in _decode("data: a\r", "", "\ndata: b\n\n")] == ["a\nb"]


def test_events_without_data_and_an_unfinished_event_are_not_dispatched() -> None:
    assert _decode("event: ping\n\n: only a comment\n\ndata: cut off") == []


def test_event_data_that_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(EventStreamError, match="not JSON"):
        ServerSentEvent(data="{nope").json()
    with pytest.raises(EventStreamError, match="not a JSON object"):
        ServerSentEvent(data="[1]").json()


def test_iter_events_reassembles_utf8_split_across_chunks() -> None:
    body = 'data: {"title": "Stürme über Édenkoben"}\n\n'.encode()
    chunks = [body[i : i + 1] for i in range(len(body))]

    with _sync_response(chunks) as response:
        events = list(iter_events(response))

    assert events == [{"title": "Stürme über Édenkoben"}]


def test_other_event_types_are_skipped_by_iter_events() -> None:
    chunks = [b"event: heartbeat\ndata: {}\n\n", b'data: {"n": 1}\n\n']

    with _sync_response(chunks) as response:
        raw = [event.event for event in iter_sse(response)]
    with _sync_response(chunks) as response:
        data = list(iter_events(response))

    assert raw == ["heartbeat", "message"]
    assert data == [{"n": 1}]


def test_a_response_that_is_not_an_event_stream_is_refused_at_once() -> None:
    headers = {"content-type": "application/json"}
    with _sync_response([b'{"code": 5}'], headers) as response:
        events: Iterator[dict[str, Any]] = iter_events(response)
        with pytest.raises(EventStreamError, match="HTTP 200 answered application/json"):
            next(events)


def test_job_updates_end_with_the_final_state() -> None:
    chunks = [_job_event("pending"), _job_event("running", 0.5), _job_event("succeeded", 1.0)]

    with _sync_response(chunks) as response:
        jobs = list(iter_job_updates(response))

    assert [(job["status"], job["progress"]) for job in jobs] == [
        ("pending", 0.0),
        ("running", 0.5),
        ("succeeded", 1.0),
    ]


@pytest.mark.parametrize(
    ("chunks", "last_status"),
    [([_job_event("running", 0.5)], "running"), ([], None)],
    ids=["after-an-event", "before-any-event"],
)
def test_a_stream_that_ends_before_a_final_state_is_cut(
    chunks: list[bytes], last_status: str | None
) -> None:
    with _sync_response(chunks) as response:
        updates = iter_job_updates(response)
        with pytest.raises(StreamCut, match="job job_1 ended before a final state") as cut:
            list(updates)

    assert cut.value.job_id == "job_1"
    assert (cut.value.last or {}).get("status") == last_status


def test_an_event_without_a_job_is_refused() -> None:
    with _sync_response([b'data: {"other": 1}\n\n']) as response:
        updates = iter_job_updates(response)
        with pytest.raises(EventStreamError, match="event without a job"):
            next(updates)


async def test_async_readers_match_the_sync_ones() -> None:
    body = _job_event("running", 0.25) + _job_event("failed", 0.25)
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]

    async with _async_response(chunks) as response:
        data = [event async for event in aiter_events(response)]
    async with _async_response(chunks) as response:
        jobs = [job async for job in aiter_job_updates(response)]

    assert [event["job"]["status"] for event in data] == ["running", "failed"]
    assert [job["status"] for job in jobs] == ["running", "failed"]


async def test_async_job_updates_report_a_cut_stream() -> None:
    async with _async_response([_job_event("running", 0.25)]) as response:
        with pytest.raises(StreamCut):
            await _drain(aiter_job_updates(response))


async def _drain(updates: AsyncIterator[dict[str, Any]]) -> None:
    async for _ in updates:
        pass


def _breaking(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks
    raise httpx.RemoteProtocolError("peer closed connection: incomplete chunked read")


def test_a_broken_connection_is_a_cut_stream_with_the_last_state() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, content=_breaking([_job_event("running", 0.5)]))

    seen: list[str] = []
    transport = httpx.MockTransport(handler)
    with (
        httpx.Client(transport=transport, base_url="http://edge") as client,
        client.stream("GET", JOB_EVENTS_PATH.format(job_id="job_1")) as response,
        pytest.raises(StreamCut) as cut,
    ):
        seen.extend(job["status"] for job in iter_job_updates(response))

    assert seen == ["running"]
    assert (cut.value.last or {}).get("progress") == 0.5
    assert isinstance(cut.value.__cause__, httpx.RemoteProtocolError)


async def test_async_a_broken_connection_is_a_cut_stream() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield _job_event("running", 0.5)
        raise httpx.ReadError("connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE, content=body())

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://e") as client,
        client.stream("GET", JOB_EVENTS_PATH.format(job_id="job_1")) as response,
    ):
        with pytest.raises(StreamCut) as cut:
            await _drain(aiter_job_updates(response))

    assert cut.value.job_id == "job_1"
    assert isinstance(cut.value.__cause__, httpx.ReadError)
