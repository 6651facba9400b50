"""Consumes job outcome events (gouache.jobs.succeeded / .failed) into the feedback store."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext

from gouache.bus.consumer import DurableConsumer, Event, PermanentEventError
from gouache.bus.subjects import JOBS_FAILED, JOBS_STREAM, JOBS_SUCCEEDED
from gouache.contracts.events.v1 import events_pb2
from gouache.runtime.context import job_id_var
from services.feedback.domain import (
    FAILED,
    MAX_DEVICE_CHARS,
    SUCCEEDED,
    InvalidOutcome,
    JobOutcome,
    utc_now,
)
from services.feedback.store import FeedbackDatabase

logger = logging.getLogger(__name__)


def outcome_of(event: Event) -> JobOutcome:
    """The job outcome an event announces; PermanentEventError when it cannot be one."""
    message = event.message
    cached = False
    pixels = 0
    compute_ms = 0
    device = ""
    if isinstance(message, events_pb2.JobSucceeded):
        status = SUCCEEDED
        cached = message.cached
        pixels = max(0, message.output_width) * max(0, message.output_height)
        # A cached result ran no model: it costs nothing whatever the event says.
        compute_ms = 0 if cached else max(0, message.compute_ms)
        device = "" if cached else message.device.strip().lower()[:MAX_DEVICE_CHARS]
    elif isinstance(message, events_pb2.JobFailed):
        status = FAILED
    else:
        raise PermanentEventError(f"feedback does not consume {type(message).__name__}")
    finished_at = (
        message.finished_at.ToDatetime(tzinfo=UTC)
        if message.HasField("finished_at")
        else datetime.now(UTC)
    )
    try:
        return JobOutcome(
            job_id=message.job_id,
            owner_id=message.owner_id,
            model_version=message.model_version,
            status=status,
            latency_ms=message.latency_ms,
            finished_at=finished_at,
            cached=cached,
            output_pixels=pixels,
            compute_ms=compute_ms,
            device=device,
            user_id=message.user_id,
        )
    except InvalidOutcome as exc:
        raise PermanentEventError(f"event {event.event_id}: {exc}") from exc


class OutcomeRecorder:
    """The consumer's handler: records each outcome once per event id."""

    def __init__(self, database: FeedbackDatabase) -> None:
        self._database = database

    async def __call__(self, event: Event) -> None:
        outcome = outcome_of(event)
        token = job_id_var.set(outcome.job_id)
        try:
            fresh = await self._database.record_outcome(
                outcome, event_id=event.event_id, at=utc_now()
            )
            logger.info(
                "job outcome recorded" if fresh else "job outcome already recorded",
                extra={
                    "event_id": event.event_id,
                    "status": outcome.status,
                    "model_version": outcome.model_version,
                    "latency_ms": outcome.latency_ms,
                },
            )
        finally:
            job_id_var.reset(token)


def outcome_consumer(
    js: JetStreamContext,
    database: FeedbackDatabase,
    *,
    durable: str,
    concurrency: int,
    max_deliver: int,
    ack_wait_s: float,
    retry_initial_s: float = 1.0,
    retry_max_s: float = 60.0,
) -> DurableConsumer:
    """The durable consumer of job outcomes for this service."""
    return DurableConsumer(
        js,
        stream=JOBS_STREAM.name,
        durable=durable,
        filter_subjects=[JOBS_SUCCEEDED, JOBS_FAILED],
        handler=OutcomeRecorder(database),
        max_in_flight=concurrency,
        max_deliver=max_deliver,
        ack_wait=ack_wait_s,
        retry_initial=retry_initial_s,
        retry_max=retry_max_s,
    )
