"""The job state machine: legal and illegal transitions, execution events, cancel, latency."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gouache.contracts.events.v1 import events_pb2
from gouache.runtime.errors import FailedPrecondition, InvalidArgument
from services.jobs.convert import execution_outcome, status_event
from services.jobs.domain.jobs import (
    ExecutionFailed,
    ExecutionOutcome,
    ExecutionProgress,
    ExecutionSucceeded,
    InvalidEvent,
    Job,
    JobStatus,
    apply_execution,
    can_transition,
    cancel,
    latency_ms,
    parse_status,
)
from services.jobs.domain.requests import StylizeParams

CREATED = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = CREATED + timedelta(seconds=3, milliseconds=250)

P, R, S, F, C = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.CANCELED,
)


def make_job(status: JobStatus = P, progress: float = 0.0) -> Job:
    return Job(
        job_id="job_01J9Z3K6X1T4YB7Q2M8N5R0C3D",
        owner_id="usr_a",
        status=status,
        requested_model_version="default",
        model_version="gatys.lite0-v1",
        content_url="http://x/v1/files/img_1",
        content_image_id="img_1",
        style_urls=("http://x/v1/files/img_2",),
        style_image_ids=("img_2",),
        params=StylizeParams(),
        created_at=CREATED,
        updated_at=CREATED,
        progress=progress,
    )


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (P, R, True),
        (P, S, True),
        (P, F, True),
        (P, C, True),
        (P, P, False),
        (R, R, True),
        (R, S, True),
        (R, F, True),
        (R, C, True),
        (R, P, False),
        *[(final, target, False) for final in (S, F, C) for target in JobStatus],
    ],
)
def test_transition_table(current: JobStatus, target: JobStatus, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_final_statuses() -> None:
    assert {s for s in JobStatus if s.is_final} == {S, F, C}


PROGRESS = ExecutionProgress(fraction=0.4, started_at=CREATED + timedelta(seconds=1))
SUCCESS = ExecutionSucceeded(result_image_id="img_result")
FAILURE = ExecutionFailed(error_code="resource_exhausted", error_message="out of memory")


@pytest.mark.parametrize(
    ("start", "outcome", "expected", "entered"),
    [
        (P, PROGRESS, R, R),
        (P, SUCCESS, S, S),
        (P, FAILURE, F, F),
        (R, SUCCESS, S, S),
        (R, FAILURE, F, F),
    ],
)
def test_execution_events_move_the_job(
    start: JobStatus, outcome: ExecutionOutcome, expected: JobStatus, entered: JobStatus
) -> None:
    change = apply_execution(make_job(start), outcome, NOW)
    assert change is not None
    assert change.job.status is expected
    assert change.entered is entered
    assert change.job.updated_at == NOW


@pytest.mark.parametrize("final", [S, F, C])
@pytest.mark.parametrize("outcome", [PROGRESS, SUCCESS, FAILURE])
def test_events_for_a_final_job_are_ignored(final: JobStatus, outcome: ExecutionOutcome) -> None:
    assert apply_execution(make_job(final), outcome, NOW) is None


def test_first_progress_starts_the_job_and_fires_job_running() -> None:
    change = apply_execution(make_job(P), PROGRESS, NOW)
    assert change is not None
    assert change.job.started_at == PROGRESS.started_at
    assert change.job.progress == pytest.approx(0.4)
    assert change.webhook_event == "job.running"
    assert change.job.finished_at is None
    assert change.job.latency_ms is None


def test_progress_without_start_time_uses_now() -> None:
    change = apply_execution(make_job(P), ExecutionProgress(fraction=0.1), NOW)
    assert change is not None
    assert change.job.started_at == NOW


def test_more_progress_updates_a_running_job_silently() -> None:
    change = apply_execution(make_job(R, 0.4), ExecutionProgress(fraction=0.7), NOW)
    assert change is not None
    assert change.job.status is R
    assert change.job.progress == pytest.approx(0.7)
    assert change.entered is None
    assert change.webhook_event is None


@pytest.mark.parametrize("fraction", [0.4, 0.2, float("nan")])
def test_progress_never_moves_backwards(fraction: float) -> None:
    assert apply_execution(make_job(R, 0.4), ExecutionProgress(fraction=fraction), NOW) is None


def test_progress_is_clamped() -> None:
    change = apply_execution(make_job(R, 0.4), ExecutionProgress(fraction=7.0), NOW)
    assert change is not None
    assert change.job.progress == 1.0


def test_success_records_result_progress_and_latency() -> None:
    change = apply_execution(make_job(R, 0.5), SUCCESS, NOW)
    assert change is not None
    job = change.job
    assert job.result_image_id == "img_result"
    assert job.progress == 1.0
    assert job.finished_at == NOW
    assert job.latency_ms == 3250
    assert change.webhook_event == "job.succeeded"
    assert (job.output_width, job.output_height) == (None, None)


def test_success_records_the_result_size_and_announces_it() -> None:
    reported = events_pb2.ExecutionSucceeded(
        job_id="job_1", result_image_id="img_result", output_width=640, output_height=480
    )
    _, sized = execution_outcome("gouache.execution.succeeded", reported)
    assert sized == ExecutionSucceeded("img_result", output_width=640, output_height=480)
    change = apply_execution(make_job(R, 0.5), sized, NOW)
    assert change is not None
    assert (change.job.output_width, change.job.output_height) == (640, 480)
    event = status_event(change.job)
    assert event is not None
    assert isinstance(event.message, events_pb2.JobSucceeded)
    assert (event.message.output_width, event.message.output_height) == (640, 480)


def test_success_without_result_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent):
        apply_execution(make_job(R), ExecutionSucceeded(result_image_id=""), NOW)


def test_failure_records_error_and_code() -> None:
    change = apply_execution(make_job(R), FAILURE, NOW)
    assert change is not None
    assert change.job.error == "out of memory"
    assert change.job.error_code == "RESOURCE_EXHAUSTED"
    assert change.job.latency_ms == 3250
    assert change.webhook_event == "job.failed"


def test_failure_without_details_gets_defaults() -> None:
    change = apply_execution(make_job(P), ExecutionFailed(error_code="", error_message=" "), NOW)
    assert change is not None
    assert change.job.error_code == "UNKNOWN"
    assert change.job.error


@pytest.mark.parametrize("start", [P, R])
def test_cancel_a_live_job(start: JobStatus) -> None:
    change = cancel(make_job(start), NOW)
    assert change is not None
    assert change.job.status is C
    assert change.job.latency_ms == 3250
    assert change.webhook_event == "job.canceled"


def test_cancel_a_canceled_job_is_a_no_op() -> None:
    assert cancel(make_job(C), NOW) is None


@pytest.mark.parametrize("final", [S, F])
def test_cancel_a_finished_job_is_refused(final: JobStatus) -> None:
    with pytest.raises(FailedPrecondition, match=f"already {final.value}"):
        cancel(make_job(final), NOW)


def test_latency_is_never_negative() -> None:
    assert latency_ms(NOW, CREATED) == 0
    assert latency_ms(CREATED, NOW) == 3250


def test_parse_status() -> None:
    assert parse_status(" Running ") is R
    with pytest.raises(InvalidArgument, match="pending, running") as caught:
        parse_status("done")
    assert caught.value.field == "status"


def test_change_keeps_identity_fields() -> None:
    job = replace(make_job(P), idempotency_key="k")
    change = apply_execution(job, SUCCESS, NOW)
    assert change is not None
    assert change.job.idempotency_key == "k"
    assert change.job.job_id == job.job_id
