"""Connecting to NATS, declaring the gouache streams and publishing protobuf events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

import nats
import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig

from gouache.bus.subjects import STREAMS, StreamSpec
from gouache.bus.tracing import publish_span

logger = logging.getLogger(__name__)

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_CONTENT_TYPE = "Content-Type"
HEADER_EVENT_TYPE = "Gouache-Event-Type"
CONTENT_TYPE_PROTOBUF = "application/protobuf"

NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)
"""What a NATS call raises when the server is slow, gone, or refuses: worth a retry."""


class PublishError(Exception):
    """JetStream did not confirm that it stored an event; nothing is known to be published."""

    def __init__(self, subject: str, event_id: str, cause: BaseException) -> None:
        super().__init__(
            f"publishing event {event_id} on {subject} was not acknowledged by JetStream: "
            f"{type(cause).__name__}: {cause}"
        )
        self.subject = subject
        self.event_id = event_id


def backoff_delay(attempt: int, *, initial: float, maximum: float) -> float:
    """Return the exponential delay before retry number attempt (1-based), capped."""
    return float(min(maximum, initial * 2 ** max(0, attempt - 1)))


def _connection_callbacks(name: str) -> dict[str, Callable[..., Awaitable[None]]]:
    async def on_error(exc: Exception) -> None:
        logger.warning("nats connection %s: %s: %s", name, type(exc).__name__, exc)

    async def on_disconnected() -> None:
        logger.warning("nats connection %s: disconnected, reconnecting", name)

    async def on_reconnected() -> None:
        logger.info("nats connection %s: reconnected", name)

    async def on_closed() -> None:
        logger.info("nats connection %s: closed", name)

    return {
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "closed_cb": on_closed,
    }


async def connect(
    url: str,
    *,
    name: str,
    connect_timeout: float = 5.0,
    reconnect_time_wait: float = 1.0,
    max_reconnect_attempts: int = -1,
) -> tuple[NATS, JetStreamContext]:
    """Connect to NATS as name (shown in server monitoring) and return it with JetStream.

    With the default max_reconnect_attempts=-1 the client keeps trying forever, both at
    start and after losing the server, so a service rides out a NATS restart; requests
    made meanwhile time out and callers retry them. The caller owns the connection and
    closes (or drains) it at shutdown.
    """
    connection = await nats.connect(
        url,
        name=name,
        connect_timeout=connect_timeout,
        reconnect_time_wait=reconnect_time_wait,
        max_reconnect_attempts=max_reconnect_attempts,
        **_connection_callbacks(name),
    )
    return connection, connection.jetstream()


async def disconnect(connection: NATS) -> None:
    """Drain the connection at shutdown, or close it when draining cannot work.

    Draining flushes pending publishes and lets subscriptions finish; it refuses while
    the client is reconnecting (NATS stopped first, as when a whole mesh shuts down),
    and then there is nothing to flush anyway, so the connection is just closed (what was
    queued for the server that went away is lost).
    """
    if connection.is_closed:
        return
    try:
        await connection.drain()
    except NATS_ERRORS as exc:
        logger.info("nats drain skipped (%s); closing", type(exc).__name__)
        try:
            await connection.close()
        except NATS_ERRORS as closing:
            # close() flushes what was queued while the server was away into the dead
            # socket (ConnectionResetError) after stopping the client's tasks: nothing to retry.
            logger.info("nats close could not flush (%s)", type(closing).__name__)


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> StreamConfig:
    """Return the JetStream configuration for a stream spec, kept on `replicas` servers."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE if spec.file_storage else StorageType.MEMORY,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s,
        num_replicas=replicas,
    )


async def ensure_streams(
    js: JetStreamContext, streams: Iterable[StreamSpec] = STREAMS, *, replicas: int = 1
) -> None:
    """Create the streams, or update them to their spec; safe to call at every start.

    `replicas` is how many servers of a JetStream cluster hold each stream (3 in the chart,
    so losing a server loses no event; 1 for the single server of the embedded mesh).

    Two services creating the same stream at once both succeed: JetStream accepts a create
    whose configuration equals the existing stream's.
    """
    for spec in streams:
        config = stream_config(spec, replicas=replicas)
        try:
            await js.stream_info(spec.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            logger.info("created stream %s over %s", spec.name, ", ".join(spec.subjects))
        else:
            await js.update_stream(config)


def check_event_id(message: Message, event_id: str) -> None:
    """Refuse an empty event id, or one that contradicts the message's own event_id field."""
    if not event_id:
        raise ValueError("an event needs a non-empty event_id")
    own = (
        getattr(message, "event_id", "") if "event_id" in message.DESCRIPTOR.fields_by_name else ""
    )
    if own and own != event_id:
        raise ValueError(f"event_id {event_id!r} differs from the message's event_id {own!r}")


async def publish_payload(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    event_id: str,
    event_type: str,
    ack_timeout: float = 5.0,
    trace_context: Mapping[str, str] | None = None,
) -> PubAck:
    """Publish an already serialized event; the outbox relay uses this with stored bytes.

    The event id becomes the Nats-Msg-Id, so JetStream drops a republish of the same event
    within the stream's duplicate window (the ack then says duplicate=True). The publish
    runs in a PRODUCER span whose W3C context goes in the headers (``traceparent``...):
    a child of the current span, or of ``trace_context``, trace headers stored with the
    event (the outbox's), when given.
    """
    with publish_span(
        subject,
        event_id=event_id,
        event_type=event_type,
        body_size=len(payload),
        parent=trace_context,
    ) as trace_headers:
        headers = {
            **trace_headers,
            HEADER_MSG_ID: event_id,
            HEADER_CONTENT_TYPE: CONTENT_TYPE_PROTOBUF,
            HEADER_EVENT_TYPE: event_type,
        }
        try:
            ack = await js.publish(subject, payload, timeout=ack_timeout, headers=headers)
        except NATS_ERRORS as exc:
            raise PublishError(subject, event_id, exc) from exc
    if ack.duplicate:
        logger.debug("event %s on %s was already in stream %s", event_id, subject, ack.stream)
    return ack


async def publish(
    js: JetStreamContext,
    subject: str,
    message: Message,
    *,
    event_id: str,
    ack_timeout: float = 5.0,
) -> PubAck:
    """Publish a protobuf event and wait until JetStream has stored it.

    Headers: Nats-Msg-Id = event_id (de-duplication), Content-Type: application/protobuf,
    Gouache-Event-Type = the message's full proto name, and the W3C trace context of the
    publish span (a child of the current span). Raises PublishError when the
    server does not acknowledge (no stream for the subject, timeout, connection lost).
    """
    check_event_id(message, event_id)
    return await publish_payload(
        js,
        subject,
        message.SerializeToString(),
        event_id=event_id,
        event_type=message.DESCRIPTOR.full_name,
        ack_timeout=ack_timeout,
    )
