"""A trace crosses a real JetStream: direct publishes, the outbox, and durable consumers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gouache.bus.consumer import DurableConsumer, Event
from gouache.bus.jetstream import publish
from gouache.bus.outbox import OutboxRelay, add_event, outbox_table
from gouache.bus.subjects import JOBS_CREATED
from gouache.db import create_all, new_metadata, session_factory
from tests.helpers.tracing import collected_spans, named
from tests.integration.bus.helpers import job_created, stream_messages, wait_until

Sessions = async_sessionmaker[AsyncSession]
PROCESS = f"process {JOBS_CREATED}"
PUBLISH = f"publish {JOBS_CREATED}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from collected_spans()


@pytest.fixture
async def consumed(js: JetStreamContext) -> AsyncIterator[list[tuple[Event, int, int]]]:
    """A durable consumer recording (event, trace id, span id) of the span its handler ran in;
    it fails each event's first delivery, so every event is delivered twice."""
    seen: list[tuple[Event, int, int]] = []

    async def handle(event: Event) -> None:
        context = trace.get_current_span().get_span_context()
        seen.append((event, context.trace_id, context.span_id))
        if event.num_delivered == 1:
            raise RuntimeError("first delivery fails")

    consumer = DurableConsumer(
        js,
        stream="GOUACHE_JOBS",
        durable="tiling",
        filter_subjects=[JOBS_CREATED],
        handler=handle,
        ack_wait=2.0,
        retry_initial=0.05,
        retry_max=0.1,
        fetch_wait=0.5,
    )
    await consumer.start()
    try:
        yield seen
    finally:
        await consumer.stop()


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _parent(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)


async def test_a_consumer_continues_the_publishers_trace(
    js: JetStreamContext,
    consumed: list[tuple[Event, int, int]],
    spans: InMemorySpanExporter,
) -> None:
    with trace.get_tracer("test").start_as_current_span("CreateJob") as call:
        await publish(js, JOBS_CREATED, job_created("evt_1"), event_id="evt_1")
    call_ids = (call.get_span_context().trace_id, call.get_span_context().span_id)

    await wait_until(lambda: len(named(spans.get_finished_spans(), PROCESS)) == 2, within=10)
    (publish_span,) = named(spans.get_finished_spans(), PUBLISH)
    assert publish_span.kind is SpanKind.PRODUCER
    assert _parent(publish_span) == call_ids

    stored = (await stream_messages(js, "GOUACHE_JOBS"))[0].headers or {}
    assert stored["traceparent"].split("-")[1:3] == [
        f"{_ids(publish_span)[0]:032x}",
        f"{_ids(publish_span)[1]:016x}",
    ]

    first, second = named(spans.get_finished_spans(), PROCESS)
    for delivery, span in enumerate((first, second), start=1):
        assert span.kind is SpanKind.CONSUMER
        assert _parent(span) == _ids(publish_span)
        assert span.attributes is not None
        assert span.attributes["messaging.destination.name"] == JOBS_CREATED
        assert span.attributes["messaging.nats.stream"] == "GOUACHE_JOBS"
        assert span.attributes["messaging.consumer.group.name"] == "tiling"
        assert span.attributes["messaging.nats.message.delivery_count"] == delivery
        assert span.attributes["messaging.message.id"] == "evt_1"
        assert span.attributes["gouache.job.id"] == "job_1"
    assert not first.status.is_ok
    assert second.status.is_unset
    # The handler ran inside the consumer span of its delivery.
    assert [(trace_id, span_id) for _, trace_id, span_id in consumed] == [
        _ids(first),
        _ids(second),
    ]


@pytest.fixture
async def outbox(engine: AsyncEngine) -> tuple[Sessions, Table]:
    metadata = new_metadata()
    table = outbox_table(metadata)
    await create_all(engine, metadata)
    return session_factory(engine), table


async def test_the_outbox_publishes_under_the_context_the_event_was_written_in(
    js: JetStreamContext,
    outbox: tuple[Sessions, Table],
    consumed: list[tuple[Event, int, int]],
    spans: InMemorySpanExporter,
) -> None:
    sessions, table = outbox
    with trace.get_tracer("test").start_as_current_span("CreateJob") as call:
        async with sessions.begin() as session:
            await add_event(session, table, JOBS_CREATED, job_created("evt_1"), "evt_1")
    async with sessions.begin() as session:  # no span: an event from a background task
        await add_event(session, table, JOBS_CREATED, job_created("evt_2", "job_2"), "evt_2")
    call_ids = (call.get_span_context().trace_id, call.get_span_context().span_id)

    async with sessions() as session:
        stored = dict((await session.execute(select(table.c.event_id, table.c.headers))).all())
    assert stored["evt_2"] is None
    assert stored["evt_1"]["traceparent"].split("-")[1:3] == [
        f"{call_ids[0]:032x}",
        f"{call_ids[1]:016x}",
    ]

    # The relay publishes later, from its own task, outside the call's span.
    relay = OutboxRelay(sessions, table, js, poll_interval=0.2)
    assert await relay.relay_batch() == 2

    await wait_until(lambda: len(named(spans.get_finished_spans(), PROCESS)) == 4, within=10)
    finished = spans.get_finished_spans()
    published = {
        span.attributes["messaging.message.id"]: span
        for span in named(finished, PUBLISH)
        if span.attributes is not None
    }
    assert _parent(published["evt_1"]) == call_ids
    assert published["evt_2"].parent is None
    assert _ids(published["evt_2"])[0] != call_ids[0]
    for span in named(finished, PROCESS):
        assert span.attributes is not None
        assert _parent(span) == _ids(published[str(span.attributes["messaging.message.id"])])
