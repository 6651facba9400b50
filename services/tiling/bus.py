"""JetStream adapters: consume created jobs, watch cancellations, publish execution events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from gouache import priority
from gouache.bus import subjects
from gouache.bus.consumer import DurableConsumer, Event, PermanentEventError, RetryableEventError
from gouache.bus.jetstream import NATS_ERRORS, PublishError, publish
from gouache.bus.tracing import process_span
from gouache.contracts.events.v1 import events_pb2
from gouache.results import ResultLink
from gouache.runtime.context import job_id_var
from gouache.runtime.errors import Unavailable
from services.tiling.domain import (
    CanceledJobs,
    Job,
    JobParams,
    JobRunner,
    Outcome,
    RetryLater,
)
from services.tiling.priority import PriorityGate

logger = logging.getLogger(__name__)

DURABLE_NAME = "tiling"
CANCEL_WATCHER_NAME = "tiling-cancel-watcher"


def job_from_event(event: events_pb2.JobCreated) -> Job:
    """The job a JobCreated event describes."""
    params = event.params
    return Job(
        job_id=event.job_id,
        owner_id=event.owner_id,
        content_image_id=event.content_image_id,
        style_image_ids=tuple(event.style_image_ids),
        model_version=event.model_version,
        params=JobParams(
            alpha=params.alpha if params.HasField("alpha") else None,
            tv_weight=params.tv_weight if params.HasField("tv_weight") else None,
            luminance_only=params.luminance_only,
            histogram_match=params.histogram_match,
            tile_size=params.tile_size
            if params.HasField("tile_size") and params.tile_size
            else None,
            overlap=params.overlap if params.HasField("overlap") else None,
            seed=params.seed if params.HasField("seed") else None,
            weights=tuple(params.weights),
            prompt=params.prompt if params.HasField("prompt") else None,
            output_format=params.output_format,
            quality=params.quality if params.HasField("quality") else None,
            max_side=params.max_side if params.HasField("max_side") else None,
        ),
        inference_endpoint=event.inference_endpoint.strip(),
    )


class JetStreamExecutionEvents:
    """Publishes ExecutionProgress/Succeeded/Failed with their event ids as message ids."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def _publish(self, subject: str, message: Message, event_id: str) -> None:
        try:
            await publish(self._js, subject, message, event_id=event_id)
        except PublishError as exc:
            raise Unavailable(str(exc)) from exc

    async def progress(
        self, job_id: str, *, event_id: str, fraction: float, stage: str, started_at: datetime
    ) -> None:
        """Publishes ExecutionProgress."""
        timestamp = Timestamp()
        timestamp.FromDatetime(started_at)
        message = events_pb2.ExecutionProgress(
            event_id=event_id, job_id=job_id, fraction=fraction, stage=stage, started_at=timestamp
        )
        await self._publish(subjects.EXECUTION_PROGRESS, message, event_id)

    async def succeeded(
        self,
        job_id: str,
        *,
        event_id: str,
        result_image_id: str,
        compute_ms: int,
        tiles: int,
        output_width: int,
        output_height: int,
        device: str = "",
        link: ResultLink | None = None,
    ) -> None:
        """Publishes ExecutionSucceeded."""
        message = events_pb2.ExecutionSucceeded(
            event_id=event_id,
            job_id=job_id,
            result_image_id=result_image_id,
            compute_ms=compute_ms,
            tiles=tiles,
            output_width=output_width,
            output_height=output_height,
            device=device,
        )
        if link is not None:
            message.result_url = link.url
            message.result_url_expires_at.FromDatetime(link.url_expires_at)
            if link.result_expires_at is not None:
                message.result_expires_at.FromDatetime(link.result_expires_at)
        await self._publish(subjects.EXECUTION_SUCCEEDED, message, event_id)

    async def failed(
        self, job_id: str, *, event_id: str, error_code: str, error_message: str
    ) -> None:
        """Publishes ExecutionFailed."""
        message = events_pb2.ExecutionFailed(
            event_id=event_id, job_id=job_id, error_code=error_code, error_message=error_message
        )
        await self._publish(subjects.EXECUTION_FAILED, message, event_id)


class CancelWatcher:
    """Records canceled job ids from gouache.jobs.canceled, replaying a recent window at start.

    Every worker sees every cancellation (an ephemeral ordered consumer, not the shared
    durable), and the replay covers cancellations made while this worker was down.
    """

    def __init__(self, js: JetStreamContext, canceled: CanceledJobs, *, lookback_s: float) -> None:
        self._js = js
        self._canceled = canceled
        self._lookback_s = lookback_s
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        """Subscribes to cancellations."""
        if self._lookback_s > 0:
            since = datetime.now(UTC) - timedelta(seconds=self._lookback_s)
            config = ConsumerConfig(opt_start_time=since)
            policy = DeliverPolicy.BY_START_TIME
        else:
            config, policy = ConsumerConfig(), DeliverPolicy.NEW
        self._subscription = await self._js.subscribe(
            subjects.JOBS_CANCELED,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
        )

    async def stop(self) -> None:
        """Unsubscribes."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await subscription.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        event = events_pb2.JobCanceled()
        try:
            event.ParseFromString(msg.data)
        except Exception:
            logger.warning("ignoring an undecodable JobCanceled event")
            return
        metadata = msg.metadata
        # The cancellation joins the trace of the call that canceled the job.
        with process_span(
            msg.headers,
            subject=msg.subject,
            stream=subjects.JOBS_STREAM.name,
            consumer=CANCEL_WATCHER_NAME,
            event_id=event.event_id,
            event_type=event.DESCRIPTOR.full_name,
            delivery_count=metadata.num_delivered,
            stream_sequence=metadata.sequence.stream,
            body_size=len(msg.data),
            job_id=event.job_id,
        ):
            self._record(event)

    def _record(self, event: events_pb2.JobCanceled) -> None:
        if event.job_id:
            self._canceled.add(event.job_id)
            logger.info("job canceled", extra={"canceled_job_id": event.job_id})


class JobConsumer:
    """Durable consumers of gouache.jobs.created.<lane>.<tier>, one per priority class.

    Each class (gouache.priority.CLASSES) has its own durable consumer, `tiling-<lane>-
    <tier>`, so a backlog in one class never queues another's jobs behind it; each
    fetches up to `concurrency` jobs, which wait in a PriorityGate of `concurrency` slots
    (in-progress heartbeats keep them from redelivery meanwhile) that runs the best-ranked
    first, a waiting job gaining one rank per `aging_s`. The durable "tiling" of earlier
    releases still consumes the bare gouache.jobs.created, as export/free.
    """

    def __init__(
        self,
        js: JetStreamContext,
        runner: JobRunner,
        *,
        ack_wait_s: float,
        max_deliver: int,
        concurrency: int,
        retry_initial_s: float,
        retry_max_s: float,
        aging_s: float = 30.0,
    ) -> None:
        self._runner = runner
        self.gate = PriorityGate(concurrency, aging_s=aging_s)
        classes = [
            (f"{DURABLE_NAME}-{lane}-{tier}", subjects.job_created_subject(lane, tier), rank)
            for rank, (lane, tier) in enumerate(priority.CLASSES)
        ]
        classes.append(
            (
                DURABLE_NAME,
                subjects.JOBS_CREATED,
                priority.rank(priority.DEFAULT_LANE, priority.DEFAULT_TIER),
            )
        )
        self._consumers = [
            DurableConsumer(
                js,
                stream=subjects.JOBS_STREAM.name,
                durable=durable,
                filter_subjects=[subject],
                handler=functools.partial(self._handle_ranked, rank),
                ack_wait=ack_wait_s,
                max_deliver=max_deliver,
                max_in_flight=concurrency,
                retry_initial=retry_initial_s,
                retry_max=retry_max_s,
            )
            for durable, subject, rank in classes
        ]

    async def start(self) -> None:
        """Starts fetching jobs of every class."""
        for consumer in self._consumers:
            await consumer.start()

    async def stop(self) -> None:
        """Stops fetching and lets the running jobs finish (or naks them after a grace)."""
        await asyncio.gather(*(consumer.stop() for consumer in self._consumers))

    async def _handle_ranked(self, rank: int, event: Event) -> None:
        async with self.gate.slot(rank):
            await self.handle(event)

    async def handle(self, event: Event) -> None:
        """Runs one delivery of a JobCreated; returning acks it, RetryableEventError naks it."""
        message = event.message
        if not isinstance(message, events_pb2.JobCreated) or not message.job_id:
            raise PermanentEventError(f"event {event.event_id} is not a JobCreated with a job id")
        token = job_id_var.set(message.job_id)
        try:
            outcome = await self._runner.run(job_from_event(message), delivery=event.num_delivered)
            # A success already logged "job finished" with its figures.
            logger.log(
                logging.DEBUG if outcome is Outcome.SUCCEEDED else logging.INFO,
                "job delivery settled",
                extra={"outcome": outcome.value},
            )
        except RetryLater as exc:
            raise RetryableEventError(f"{exc.code}: {exc.message}") from exc
        finally:
            job_id_var.reset(token)
