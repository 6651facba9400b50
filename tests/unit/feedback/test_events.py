"""What feedback reads from a job outcome event: the size of the result for usage."""

from __future__ import annotations

import pytest

from gouache.bus.consumer import Event, PermanentEventError
from gouache.contracts.events.v1 import events_pb2
from services.feedback.domain import FAILED, SUCCEEDED
from services.feedback.events import outcome_of


def _event(message: events_pb2.JobSucceeded | events_pb2.JobFailed) -> Event:
    return Event("gouache.jobs.x", message, "evt_1", 1, 1)


def test_a_success_carries_its_result_pixels() -> None:
    outcome = outcome_of(
        _event(
            events_pb2.JobSucceeded(
                job_id="job_1",
                owner_id="usr_1",
                model_version="v1",
                latency_ms=10,
                output_width=640,
                output_height=480,
            )
        )
    )
    assert (outcome.status, outcome.output_pixels) == (SUCCEEDED, 640 * 480)


def test_failures_and_unsized_results_add_no_pixels() -> None:
    unsized = events_pb2.JobSucceeded(job_id="job_1", owner_id="usr_1", model_version="v1")
    assert outcome_of(_event(unsized)).output_pixels == 0
    failed = events_pb2.JobFailed(job_id="job_2", owner_id="usr_1", model_version="v1")
    assert (outcome_of(_event(failed)).status, outcome_of(_event(failed)).output_pixels) == (
        FAILED,
        0,
    )
    broken = events_pb2.JobSucceeded(job_id="", owner_id="usr_1", model_version="v1")
    with pytest.raises(PermanentEventError):
        outcome_of(_event(broken))


def test_a_success_carries_its_compute_and_device_and_a_cached_one_costs_nothing() -> None:
    ran = events_pb2.JobSucceeded(
        job_id="job_1", owner_id="usr_1", model_version="v1", compute_ms=1234, device=" CUDA "
    )
    outcome = outcome_of(_event(ran))
    assert (outcome.compute_ms, outcome.device) == (1234, "cuda")
    cached = events_pb2.JobSucceeded(
        job_id="job_2", owner_id="usr_1", model_version="v1", cached=True, compute_ms=99
    )
    assert (outcome_of(_event(cached)).compute_ms, outcome_of(_event(cached)).device) == (0, "")
    negative = events_pb2.JobSucceeded(
        job_id="job_3", owner_id="usr_1", model_version="v1", compute_ms=-5
    )
    assert outcome_of(_event(negative)).compute_ms == 0


def test_an_outcome_names_its_project_and_creator() -> None:
    shared = events_pb2.JobSucceeded(
        job_id="job_1", owner_id="prj_team", model_version="v1", user_id="usr_1"
    )
    assert (outcome_of(_event(shared)).owner_id, outcome_of(_event(shared)).user_id) == (
        "prj_team",
        "usr_1",
    )
    failed = events_pb2.JobFailed(
        job_id="job_2", owner_id="prj_team", model_version="v1", user_id="usr_2"
    )
    assert outcome_of(_event(failed)).user_id == "usr_2"
    # Events from before projects name no creator: the owner was the user who created it.
    older = events_pb2.JobSucceeded(job_id="job_3", owner_id="usr_1", model_version="v1")
    assert outcome_of(_event(older)).user_id == "usr_1"
    too_long = events_pb2.JobSucceeded(
        job_id="job_4", owner_id="prj_team", model_version="v1", user_id="u" * 65
    )
    with pytest.raises(PermanentEventError, match="user_id must have at most 64"):
        outcome_of(_event(too_long))
