"""W3C trace context on NATS messages: publish spans inject it, consumer spans continue it.

Every publish runs in a PRODUCER span whose context travels in the message headers
(``traceparent``, ``tracestate``, and ``baggage`` when there is any, by the globally
configured propagators: W3C by default, ``OTEL_PROPAGATORS`` otherwise). A consumer starts
its handler's CONSUMER span as a child of the context it extracts from the headers, so
the handler's gRPC calls and publishes join the publisher's trace. The outbox stores the
context current when an event is written (``current_trace_headers``) and its relay
publishes under that stored context, so a trace survives the hop through the database too.
Attributes follow the OpenTelemetry messaging conventions; NATS has no registered
attributes of its own, so the JetStream specifics sit under ``messaging.nats.*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

TRACER_NAME = "gouache.bus"
MESSAGING_SYSTEM = "nats"

ATTR_SYSTEM = "messaging.system"
ATTR_OPERATION_TYPE = "messaging.operation.type"
ATTR_OPERATION_NAME = "messaging.operation.name"
ATTR_DESTINATION = "messaging.destination.name"
ATTR_CONSUMER_GROUP = "messaging.consumer.group.name"
ATTR_SUBSCRIPTION = "messaging.destination.subscription.name"
ATTR_MESSAGE_ID = "messaging.message.id"
ATTR_BODY_SIZE = "messaging.message.body.size"
ATTR_STREAM = "messaging.nats.stream"
ATTR_DELIVERY_COUNT = "messaging.nats.message.delivery_count"
ATTR_STREAM_SEQUENCE = "messaging.nats.message.stream_sequence"
ATTR_EVENT_TYPE = "gouache.event.type"
ATTR_JOB_ID = "gouache.job.id"


def current_trace_headers() -> dict[str, str]:
    """The current trace context as message headers; empty when no span is recording.

    The outbox stores this with an event so that its later publish continues the trace of
    the transaction that wrote the event.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_trace_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by message headers (names matched case-insensitively)."""
    carrier = {key.lower(): value for key, value in (headers or {}).items()}
    return propagate.extract(carrier)


@contextmanager
def publish_span(
    subject: str,
    *,
    event_id: str,
    event_type: str,
    body_size: int,
    parent: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """A PRODUCER span around one publish; yields the trace headers to send with it.

    Without ``parent`` the span is a child of the current context (a service publishing
    while it handles a call or an event). With ``parent``, trace headers stored earlier (an
    outbox row), it continues that context instead, and starts a new trace when the stored
    headers carry none.
    """
    context = None if parent is None else extract_trace_context(parent)
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"publish {subject}",
        context=context,
        kind=SpanKind.PRODUCER,
        attributes={
            ATTR_SYSTEM: MESSAGING_SYSTEM,
            ATTR_OPERATION_TYPE: "send",
            ATTR_OPERATION_NAME: "publish",
            ATTR_DESTINATION: subject,
            ATTR_MESSAGE_ID: event_id,
            ATTR_BODY_SIZE: body_size,
            ATTR_EVENT_TYPE: event_type,
        },
    ):
        yield current_trace_headers()


@contextmanager
def process_span(
    headers: Mapping[str, str] | None,
    *,
    subject: str,
    stream: str,
    consumer: str,
    event_id: str,
    event_type: str,
    delivery_count: int,
    stream_sequence: int,
    body_size: int,
    job_id: str = "",
) -> Iterator[Span]:
    """A CONSUMER span for one delivery, a child of the context in the message headers.

    It is the current span while the handler runs; an exception escaping the handler marks
    it as an error (and is re-raised). ``job_id``, when the event names a job, is recorded
    as ``gouache.job.id`` so a job's trace can be found by its id.
    """
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"process {subject}",
        context=extract_trace_context(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            ATTR_SYSTEM: MESSAGING_SYSTEM,
            ATTR_OPERATION_TYPE: "process",
            ATTR_OPERATION_NAME: "process",
            ATTR_DESTINATION: subject,
            ATTR_CONSUMER_GROUP: consumer,
            ATTR_SUBSCRIPTION: consumer,
            ATTR_MESSAGE_ID: event_id,
            ATTR_BODY_SIZE: body_size,
            ATTR_EVENT_TYPE: event_type,
            ATTR_STREAM: stream,
            ATTR_DELIVERY_COUNT: delivery_count,
            ATTR_STREAM_SEQUENCE: stream_sequence,
            **({ATTR_JOB_ID: job_id} if job_id else {}),
        },
    ) as span:
        yield span
