"""The job record and its state machine: pending → running → succeeded | failed | canceled."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from gouache.priority import DEFAULT_LANE
from gouache.results import ResultLink
from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.domain.requests import StylizeParams


class JobStatus(StrEnum):
    """Where a job is in its life; the strings are part of the public API."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        """Final states never change again."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

# Every legal change of status. A running job reporting more progress stays running.
_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.PENDING, JobStatus.RUNNING),
        (JobStatus.PENDING, JobStatus.SUCCEEDED),
        (JobStatus.PENDING, JobStatus.FAILED),
        (JobStatus.PENDING, JobStatus.CANCELED),
        (JobStatus.RUNNING, JobStatus.RUNNING),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.CANCELED),
    }
)

# Webhook event names for the statuses a subscriber can hear about.
WEBHOOK_EVENT_BY_STATUS: dict[JobStatus, str] = {
    JobStatus.RUNNING: "job.running",
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}

DEFAULT_ERROR_CODE = "UNKNOWN"
DEFAULT_ERROR_MESSAGE = "the job failed without a reason from the worker"


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job in `current` may move to `target`."""
    return (current, target) in _TRANSITIONS


def parse_status(text: str, *, field: str = "status") -> JobStatus:
    """Turns a client's status string into a JobStatus, or says which ones exist."""
    try:
        return JobStatus(text.strip().lower())
    except ValueError:
        allowed = ", ".join(status.value for status in JobStatus)
        raise InvalidArgument(
            f"{field} must be one of {allowed}, got {text!r}", field=field
        ) from None


@dataclass(frozen=True)
class Job:
    """One stylization job as stored.

    owner_id is the project the job belongs to (its creator's own id for their personal
    project, as for every job from before projects); user_id is the user who created it.
    """

    job_id: str
    owner_id: str
    status: JobStatus
    requested_model_version: str
    model_version: str
    content_url: str
    content_image_id: str
    style_urls: tuple[str, ...]
    style_image_ids: tuple[str, ...]
    params: StylizeParams
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    eta_seconds: int = 0
    progress: float = 0.0
    result_image_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    latency_ms: int | None = None
    # The result cache's key of this request (domain.cache); None when not computed.
    cache_key: str | None = None
    # Answered from the result cache: succeeded at creation, no inference ran.
    cached: bool = False
    # "preview" or "export" (gouache.priority.LANES).
    lane: str = DEFAULT_LANE
    # The batch the job is an item of, and its position in the batch (domain.batches).
    batch_id: str | None = None
    batch_index: int | None = None
    # The result image's size in pixels, as its worker reported it (migration 0006); None
    # when unknown: not succeeded, answered from the cache, or made before workers said.
    output_width: int | None = None
    output_height: int | None = None
    # The worker's time on the job and the kind of device its model ran on, from the
    # success event; carried into JobSucceeded and the owner's compute counter, not stored
    # on the job (0 and "" once read back).
    compute_ms: int = 0
    device: str = ""
    # The user who created the job; left empty, the owner (a user's personal project).
    user_id: str = ""

    def __post_init__(self) -> None:
        if not self.user_id:
            object.__setattr__(self, "user_id", self.owner_id)


@dataclass(frozen=True)
class ExecutionProgress:
    """A worker reports that it works on the job and how far it got."""

    fraction: float
    started_at: datetime | None = None


@dataclass(frozen=True)
class ExecutionSucceeded:
    """A worker stored the job's result; its size in pixels when the worker said (else 0)."""

    result_image_id: str
    output_width: int = 0
    output_height: int = 0
    # The worker's time on the job, and the device kind its model ran on ("" unknown).
    compute_ms: int = 0
    device: str = ""
    # The result's signed URL when the worker passed storage's on (newer workers do).
    link: ResultLink | None = None


@dataclass(frozen=True)
class ExecutionFailed:
    """A worker gave up on the job."""

    error_code: str
    error_message: str


ExecutionOutcome = ExecutionProgress | ExecutionSucceeded | ExecutionFailed


class InvalidEvent(ValueError):
    """An execution event that can never be applied (it lacks what it must carry)."""


@dataclass(frozen=True)
class JobChange:
    """The job after a change, and what the change means to others."""

    job: Job
    # The status the job entered, when the status changed (events and webhooks follow it).
    entered: JobStatus | None

    @property
    def webhook_event(self) -> str | None:
        """The webhook event this change fires, if any."""
        return WEBHOOK_EVENT_BY_STATUS.get(self.entered) if self.entered else None


def latency_ms(created_at: datetime, finished_at: datetime) -> int:
    """Milliseconds from creation to the final state (never negative)."""
    return max(0, round((finished_at - created_at).total_seconds() * 1000))


def _finished(job: Job, status: JobStatus, now: datetime) -> Job:
    return replace(
        job,
        status=status,
        updated_at=now,
        finished_at=now,
        latency_ms=latency_ms(job.created_at, now),
    )


def apply_execution(job: Job, outcome: ExecutionOutcome, now: datetime) -> JobChange | None:
    """What an execution event does to a job; None when it changes nothing.

    Events for a final job are ignored: a late progress report, a success after a
    cancel, or a redelivered outcome all leave the job as it is. Progress never moves
    backwards, so out-of-order progress events are harmless. A job whose progress
    events were missed goes straight from pending to its outcome.
    """
    if job.status.is_final:
        return None
    if isinstance(outcome, ExecutionProgress):
        return _progress(job, outcome, now)
    if isinstance(outcome, ExecutionSucceeded):
        if not outcome.result_image_id:
            raise InvalidEvent(f"success event for job {job.job_id} names no result image")
        succeeded = replace(
            _finished(job, JobStatus.SUCCEEDED, now),
            progress=1.0,
            result_image_id=outcome.result_image_id,
            output_width=outcome.output_width or None,
            output_height=outcome.output_height or None,
            compute_ms=max(0, outcome.compute_ms),
            device=outcome.device,
        )
        return JobChange(job=succeeded, entered=JobStatus.SUCCEEDED)
    failed = replace(
        _finished(job, JobStatus.FAILED, now),
        error=outcome.error_message.strip() or DEFAULT_ERROR_MESSAGE,
        error_code=outcome.error_code.strip().upper() or DEFAULT_ERROR_CODE,
    )
    return JobChange(job=failed, entered=JobStatus.FAILED)


def _progress(job: Job, outcome: ExecutionProgress, now: datetime) -> JobChange | None:
    fraction = outcome.fraction if math.isfinite(outcome.fraction) else 0.0
    fraction = min(1.0, max(0.0, fraction))
    if job.status is JobStatus.PENDING:
        running = replace(
            job,
            status=JobStatus.RUNNING,
            progress=max(job.progress, fraction),
            started_at=outcome.started_at or now,
            updated_at=now,
        )
        return JobChange(job=running, entered=JobStatus.RUNNING)
    if fraction <= job.progress:
        return None
    return JobChange(job=replace(job, progress=fraction, updated_at=now), entered=None)


def cancel(job: Job, now: datetime) -> JobChange | None:
    """Cancels a pending or running job; None for a job already canceled (a no-op)."""
    if job.status is JobStatus.CANCELED:
        return None
    if not can_transition(job.status, JobStatus.CANCELED):
        raise FailedPrecondition(
            f"job {job.job_id} already {job.status.value}; only pending or running jobs "
            "can be canceled",
            reason="job_final",
        )
    return JobChange(job=_finished(job, JobStatus.CANCELED, now), entered=JobStatus.CANCELED)
