"""The durable "jobs" consumer of execution events, which moves jobs to their next state."""

from __future__ import annotations

from nats.js import JetStreamContext

from gouache.bus import subjects
from gouache.bus.consumer import DurableConsumer, Event, PermanentEventError
from services.jobs.app import JobsApp
from services.jobs.convert import execution_outcome
from services.jobs.domain.jobs import InvalidEvent

DURABLE_NAME = "jobs"
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


def execution_consumer(js: JetStreamContext, app: JobsApp, *, concurrency: int) -> DurableConsumer:
    """The durable consumer "jobs" on gouache.execution.*."""
    return DurableConsumer(
        js,
        stream=subjects.EXECUTION_STREAM.name,
        durable=DURABLE_NAME,
        filter_subjects=EXECUTION_SUBJECTS,
        handler=ExecutionEvents(app).handle,
        max_in_flight=concurrency,
    )
