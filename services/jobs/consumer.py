"""The jobs service's bus subscribers: execution events, dead letters that fail jobs, and
wake-ups of watchers when another replica ends a job."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from gouache.bus import subjects
from gouache.bus.consumer import DurableConsumer, Event, PermanentEventError
from gouache.bus.deadletter import DEAD_LETTER_TYPES, DeadLetter, job_id_of
from services.jobs.app import JobsApp
from services.jobs.convert import execution_outcome
from services.jobs.domain.jobs import ExecutionFailed, InvalidEvent
from services.jobs.notifier import JobNotifier

logger = logging.getLogger(__name__)

DURABLE_NAME = "jobs"
DEAD_LETTER_DURABLE_NAME = "jobs-dead-letters"
DEAD_LETTER_ERROR_CODE = "INTERNAL"
EXECUTION_SUBJECTS = (
    subjects.EXECUTION_PROGRESS,
    subjects.EXECUTION_SUCCEEDED,
    subjects.EXECUTION_FAILED,
)


class ExecutionEvents:
    """Handles one execution event: idempotent on its event id, in one transaction."""

    def __init__(self, app: JobsApp) -> None:
        self._app = app

    async def handle(self, event: Event) -> None:
        """Applies the event; one that can never apply is dropped (not redelivered)."""
        try:
            job_id, outcome = execution_outcome(event.subject, event.message)
            await self._app.apply_execution(event.event_id, job_id, outcome)
        except InvalidEvent as exc:
            raise PermanentEventError(str(exc)) from exc


class DeadLetters:
    """Fails the job a dead letter is about, with a reason that says where the message is.

    Any consumer's dead letter counts (tiling's JobCreated, this service's own execution
    events, feedback's outcomes): a job whose message could not be processed would
    otherwise stay pending or running forever. A final job is left as it is, and a dead
    letter is applied once (its id is dlq-<stream>-<sequence>-<consumer>).
    """

    def __init__(self, app: JobsApp) -> None:
        self._app = app

    async def handle(self, event: Event) -> None:
        """Fails the named job; a dead letter naming no job (undecodable) is only logged."""
        letter = DeadLetter.from_headers(event.headers)
        job_id = letter.job_id or job_id_of(event.message)
        reason = letter.describe(event.stream_sequence)
        if not job_id:
            logger.warning("dead letter about no job: %s", reason)
            return
        failure = ExecutionFailed(error_code=DEAD_LETTER_ERROR_CODE, error_message=reason)
        try:
            await self._app.apply_execution(event.event_id, job_id, failure)
        except InvalidEvent as exc:
            raise PermanentEventError(str(exc)) from exc


FINAL_SUBJECTS = (subjects.JOBS_SUCCEEDED, subjects.JOBS_FAILED, subjects.JOBS_CANCELED)


class FinalStateWakeups:
    """Wakes this replica's WatchJob and WaitJob callers when any replica ends a job.

    The replica that ends a job publishes JobSucceeded, JobFailed or JobCanceled after
    its transaction commits (the outbox); every replica hears them on a plain NATS
    subscription (no consumer, nothing acknowledged, nothing kept) and wakes the
    job's watchers, who re-read it. So a long poll answers at once whichever replica
    applied the outcome; the periodic re-read (watch_poll_interval_s) is only a safety
    net for a missed message and for progress made on other replicas.
    """

    def __init__(self, notifier: JobNotifier) -> None:
        self._notifier = notifier

    async def handle(self, msg: Msg) -> None:
        kind = subjects.MESSAGE_TYPES.get(msg.subject)
        if kind is None:
            return
        try:
            message = kind.FromString(msg.data)
        except DecodeError:
            logger.warning("undecodable event on %s ignored by the wake-ups", msg.subject)
            return
        job_id = getattr(message, "job_id", "")
        if job_id:
            self._notifier.notify(job_id)

    async def subscribe(self, connection: NATS) -> list[Subscription]:
        """Plain subscriptions on the final-state subjects, feeding handle()."""
        return [await connection.subscribe(subject, cb=self.handle) for subject in FINAL_SUBJECTS]


@dataclass(frozen=True)
class ConsumerOptions:
    """How the jobs service's consumers run (JobsSettings.consumer_*)."""

    concurrency: int = 8
    max_deliver: int = 5
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0


def execution_consumer(
    js: JetStreamContext, app: JobsApp, options: ConsumerOptions
) -> DurableConsumer:
    """The durable consumer "jobs" on gouache.execution.*; what it gives up on is dead-lettered."""
    return DurableConsumer(
        js,
        stream=subjects.EXECUTION_STREAM.name,
        durable=DURABLE_NAME,
        filter_subjects=EXECUTION_SUBJECTS,
        handler=ExecutionEvents(app).handle,
        max_in_flight=options.concurrency,
        max_deliver=options.max_deliver,
        retry_initial=options.retry_initial_s,
        retry_max=options.retry_max_s,
    )


def dead_letter_consumer(
    js: JetStreamContext, app: JobsApp, options: ConsumerOptions
) -> DurableConsumer:
    """The durable consumer "jobs-dead-letters" on gouache.dlq.>, which fails their jobs.

    It never dead-letters what it cannot apply (that would feed itself); it logs and drops.
    """
    return DurableConsumer(
        js,
        stream=subjects.DLQ_STREAM.name,
        durable=DEAD_LETTER_DURABLE_NAME,
        filter_subjects=[f"{subjects.DEAD_LETTER_PREFIX}>"],
        handler=DeadLetters(app).handle,
        message_types=DEAD_LETTER_TYPES,
        max_in_flight=options.concurrency,
        max_deliver=options.max_deliver,
        retry_initial=options.retry_initial_s,
        retry_max=options.retry_max_s,
        dead_letters=False,
    )
