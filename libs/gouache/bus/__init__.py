"""Events over NATS JetStream: subjects and streams, publishing, the outbox, durable consumers."""

from gouache.bus.consumer import (
    DurableConsumer,
    Event,
    Handler,
    PermanentEventError,
    RetryableEventError,
)
from gouache.bus.idempotency import mark_processed, processed_events_table
from gouache.bus.jetstream import (
    PublishError,
    connect,
    ensure_streams,
    publish,
    publish_payload,
)
from gouache.bus.outbox import OutboxRelay, add_event, outbox_table
from gouache.bus.subjects import (
    EXECUTION_FAILED,
    EXECUTION_PROGRESS,
    EXECUTION_STREAM,
    EXECUTION_SUCCEEDED,
    JOBS_CANCELED,
    JOBS_CREATED,
    JOBS_FAILED,
    JOBS_STREAM,
    JOBS_SUCCEEDED,
    MESSAGE_TYPES,
    STREAMS,
    StreamSpec,
)

__all__ = [
    "EXECUTION_FAILED",
    "EXECUTION_PROGRESS",
    "EXECUTION_STREAM",
    "EXECUTION_SUCCEEDED",
    "JOBS_CANCELED",
    "JOBS_CREATED",
    "JOBS_FAILED",
    "JOBS_STREAM",
    "JOBS_SUCCEEDED",
    "MESSAGE_TYPES",
    "STREAMS",
    "DurableConsumer",
    "Event",
    "Handler",
    "OutboxRelay",
    "PermanentEventError",
    "PublishError",
    "RetryableEventError",
    "StreamSpec",
    "add_event",
    "connect",
    "ensure_streams",
    "mark_processed",
    "outbox_table",
    "processed_events_table",
    "publish",
    "publish_payload",
]
