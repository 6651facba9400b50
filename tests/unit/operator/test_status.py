"""The status survives its JSON form: an operator that restarts reads back what it wrote."""

from __future__ import annotations

from datetime import UTC, datetime

from gouache_operator.domain.analysis import (
    Baseline,
    Check,
    MetricResult,
    Quality,
    Verdict,
)
from gouache_operator.domain.status import (
    AnalysisRecord,
    Phase,
    Placement,
    Status,
    status_from_json,
    status_to_json,
)

T = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def full_status() -> Status:
    check = Check(
        verdict=Verdict.FAIL,
        metrics=(
            MetricResult("error-rate", Verdict.FAIL, 0.5, 0.05, None, "error rate 0.500 > 0.05"),
            MetricResult("rating", Verdict.INCONCLUSIVE, 0.0, None, 4.0, "no ratings", False),
        ),
        canary_samples=20,
        stable_samples=100,
    )
    return Status(
        phase=Phase.CANARY,
        message="canary step 1/2",
        weight=20,
        step=0,
        stable_version="adain.lite0-v1",
        endpoint="127.0.0.1:50055",
        placed_at=T,
        canary_started_at=T,
        step_started_at=T,
        failed_checks=1,
        analysis=AnalysisRecord(time=T, check=check),
        quality=Quality(0.6, 0.5),
        stable_quality=Quality(error="FAILED_PRECONDITION: trained styles only", measurable=False),
        baseline=Baseline(300.0, 100, 4.2, 12, Quality(0.6, 0.5)),
        placement=Placement("h100", 1, 1, 6.0),
        observed_generation=3,
    ).with_condition("Ready", True, "Ready", "serving", T)


def test_round_trip() -> None:
    status = full_status()
    assert status_from_json(status_to_json(status)) == status


def test_unset_fields_are_written_as_null_so_a_merge_patch_removes_them() -> None:
    written = status_to_json(Status())
    assert written["phase"] == "Pending"
    assert written["lastAnalysis"] is None
    assert written["promotedAt"] is None


def test_conditions_move_their_time_only_when_their_status_changes() -> None:
    later = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    status = full_status()
    same = status.with_condition("Ready", True, "Ready", "still serving", later)
    assert same.condition("Ready").since == T  # type: ignore[union-attr]
    flipped = status.with_condition("Ready", False, "ReplicasUnavailable", "0/1", later)
    assert flipped.condition("Ready").since == later  # type: ignore[union-attr]


def test_an_empty_or_foreign_status_reads_as_pending() -> None:
    assert status_from_json(None).phase is Phase.PENDING
    assert status_from_json({"phase": "Dancing"}).phase is Phase.PENDING
