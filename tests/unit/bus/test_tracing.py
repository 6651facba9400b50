"""W3C trace context in NATS headers: what a publish injects and what a consumer extracts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gouache.bus.tracing import (
    current_trace_headers,
    extract_trace_context,
    process_span,
    publish_span,
)
from tests.helpers.tracing import collected_spans, named

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_SPAN_ID = 0x00F067AA0BA902B7
CALLER = {
    "traceparent": f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01",
    "tracestate": "vendor=opaque",
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from collected_spans()


def _traceparent_ids(headers: dict[str, str]) -> tuple[int, int]:
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 0x01, "sampled"
    return int(trace_id, 16), int(span_id, 16)


def test_no_current_span_means_no_headers(spans: InMemorySpanExporter) -> None:
    assert current_trace_headers() == {}


def test_headers_name_the_current_span(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("call") as span:
        headers = current_trace_headers()
    context = span.get_span_context()
    assert _traceparent_ids(headers) == (context.trace_id, context.span_id)


def test_a_publish_is_a_producer_span_under_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    with (
        trace.get_tracer("test").start_as_current_span("call") as call,
        publish_span(
            "gouache.jobs.created", event_id="evt_1", event_type="T", body_size=12
        ) as headers,
    ):
        pass
    (publish,) = named(spans.get_finished_spans(), "publish gouache.jobs.created")
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None
    assert publish.parent.span_id == call.get_span_context().span_id
    assert publish.context is not None
    assert _traceparent_ids(headers) == (publish.context.trace_id, publish.context.span_id)
    assert publish.attributes is not None
    assert dict(publish.attributes) == {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "gouache.jobs.created",
        "messaging.message.id": "evt_1",
        "messaging.message.body.size": 12,
        "gouache.event.type": "T",
    }


def test_a_stored_context_is_continued_instead_of_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    with (
        trace.get_tracer("test").start_as_current_span("relay loop"),
        publish_span(
            "gouache.jobs.created", event_id="evt_1", event_type="T", body_size=1, parent=CALLER
        ) as headers,
    ):
        pass
    (publish,) = named(spans.get_finished_spans(), "publish gouache.jobs.created")
    assert publish.parent is not None
    assert (publish.parent.trace_id, publish.parent.span_id) == (TRACE_ID, PARENT_SPAN_ID)
    trace_id, span_id = _traceparent_ids(headers)
    assert trace_id == TRACE_ID
    assert publish.context is not None
    assert span_id == publish.context.span_id != PARENT_SPAN_ID
    assert headers["tracestate"] == "vendor=opaque"


def test_a_stored_row_without_context_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with (
        tracer.start_as_current_span("relay loop") as loop,
        publish_span("s", event_id="e", event_type="T", body_size=1, parent={}) as headers,
    ):
        pass
    (publish,) = named(spans.get_finished_spans(), "publish s")
    assert publish.parent is None
    assert _traceparent_ids(headers)[0] != loop.get_span_context().trace_id


def test_extraction_ignores_the_case_of_header_names() -> None:
    shouted = {"Traceparent": CALLER["traceparent"], "TRACESTATE": CALLER["tracestate"]}
    context = trace.get_current_span(extract_trace_context(shouted)).get_span_context()
    assert (context.trace_id, context.span_id, context.is_remote) == (
        TRACE_ID,
        PARENT_SPAN_ID,
        True,
    )
    assert context.trace_state.get("vendor") == "opaque"
    assert not trace.get_current_span(extract_trace_context(None)).get_span_context().is_valid


def test_a_delivery_is_a_consumer_span_under_the_publishers_context(
    spans: InMemorySpanExporter,
) -> None:
    with process_span(
        {"Nats-Msg-Id": "evt_1", **CALLER},
        subject="gouache.jobs.created",
        stream="GOUACHE_JOBS",
        consumer="tiling",
        event_id="evt_1",
        event_type="gouache.events.v1.JobCreated",
        delivery_count=2,
        stream_sequence=7,
        body_size=40,
    ) as span:
        assert trace.get_current_span() is span
        inner = current_trace_headers()
    (process,) = named(spans.get_finished_spans(), "process gouache.jobs.created")
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert (process.parent.trace_id, process.parent.span_id) == (TRACE_ID, PARENT_SPAN_ID)
    assert process.context is not None
    assert _traceparent_ids(inner) == (TRACE_ID, process.context.span_id)
    assert process.attributes is not None
    assert dict(process.attributes) == {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "gouache.jobs.created",
        "messaging.consumer.group.name": "tiling",
        "messaging.destination.subscription.name": "tiling",
        "messaging.message.id": "evt_1",
        "messaging.message.body.size": 40,
        "gouache.event.type": "gouache.events.v1.JobCreated",
        "messaging.nats.stream": "GOUACHE_JOBS",
        "messaging.nats.message.delivery_count": 2,
        "messaging.nats.message.stream_sequence": 7,
    }


def test_a_failing_handler_marks_its_span_and_still_raises(spans: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError, match="inference down"),
        process_span(
            None,
            subject="s",
            stream="S",
            consumer="c",
            event_id="e",
            event_type="T",
            delivery_count=1,
            stream_sequence=1,
            body_size=0,
        ),
    ):
        raise RuntimeError("inference down")
    (process,) = named(spans.get_finished_spans(), "process s")
    assert process.parent is None
    assert process.status.status_code is StatusCode.ERROR
    assert [event.name for event in process.events] == ["exception"]
