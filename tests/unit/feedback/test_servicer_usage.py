"""GetUsage's compute and periods, and ExportUsage's CSV, over a real gRPC server."""

from __future__ import annotations

import csv
import io

import grpc

from gouache.contracts.feedback.v1 import feedback_pb2
from services.feedback.domain import SUCCEEDED, JobOutcome
from services.feedback.usage_csv import COLUMNS
from tests.unit.feedback.test_servicer import NOW, OWNER, Harness, _fails, feedback

__all__ = ["feedback"]  # the fixture, imported for pytest


async def test_usage_per_month_carries_compute_seconds(feedback: Harness) -> None:
    monthly = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(group_by="Month"), metadata=feedback.md()
    )
    assert [(u.period, u.model_version, u.compute_seconds) for u in monthly.usage] == [
        ("2030-01", "gatys.lite0-fast", 0.0),
        ("2030-01", "gatys.lite0-v1", 0.0),
    ]
    whole = await feedback.stub.GetUsage(feedback_pb2.GetUsageRequest(), metadata=feedback.md())
    assert {u.period for u in whole.usage} == {""}


async def test_export_is_csv_with_the_same_access_rules(feedback: Harness) -> None:
    body = await feedback.stub.ExportUsage(
        feedback_pb2.ExportUsageRequest(), metadata=feedback.md("usr_admin", role="admin")
    )
    assert body.content_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(body.data.decode(), newline="")))
    assert tuple(rows[0]) == COLUMNS
    assert [row[1:7] for row in rows[1:]] == [
        ["usr_else", "usr_else", "gatys.lite0-v1", "0", "1", "0"],
        [OWNER, OWNER, "gatys.lite0-fast", "1", "0", "0"],
        [OWNER, OWNER, "gatys.lite0-v1", "2", "0", "0"],
    ]
    own = await feedback.stub.ExportUsage(feedback_pb2.ExportUsageRequest(), metadata=feedback.md())
    assert {row[2] for row in list(csv.reader(io.StringIO(own.data.decode())))[1:]} == {OWNER}
    details = await _fails(
        feedback.stub.ExportUsage(
            feedback_pb2.ExportUsageRequest(user_id="usr_else"), metadata=feedback.md()
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "only admins" in details


async def test_an_unknown_group_by_is_invalid_argument(feedback: Harness) -> None:
    for call in (
        feedback.stub.GetUsage(
            feedback_pb2.GetUsageRequest(group_by="week"), metadata=feedback.md()
        ),
        feedback.stub.ExportUsage(
            feedback_pb2.ExportUsageRequest(group_by="hour"), metadata=feedback.md()
        ),
    ):
        details = await _fails(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert "group_by must be day or month" in details


async def test_a_projects_owner_reads_its_usage_by_member(feedback: Harness) -> None:
    for index, user in enumerate((OWNER, "usr_mate")):
        await feedback.database.record_outcome(
            JobOutcome(
                f"job_t{index}", "prj_team", "gatys.lite0-v1", SUCCEEDED, 5, NOW, user_id=user
            ),
            event_id=f"evt_t{index}",
            at=NOW,
        )
    owner = feedback.md(extra={"project": "prj_team", "project_role": "owner"})
    team = await feedback.stub.GetUsage(
        feedback_pb2.GetUsageRequest(project_id="prj_team"), metadata=owner
    )
    assert [(u.project_id, u.user_id, u.jobs_succeeded) for u in team.usage] == [
        ("prj_team", "usr_mate", 1),
        ("prj_team", OWNER, 1),
    ]
    export = await feedback.stub.ExportUsage(
        feedback_pb2.ExportUsageRequest(project_id="prj_team", user_id="usr_mate"), metadata=owner
    )
    rows = list(csv.reader(io.StringIO(export.data.decode(), newline="")))
    assert [row[1:4] for row in rows[1:]] == [["prj_team", "usr_mate", "gatys.lite0-v1"]]
    # Without project_id, the caller's own jobs, in every project.
    own = await feedback.stub.GetUsage(feedback_pb2.GetUsageRequest(), metadata=owner)
    assert {(u.project_id, u.user_id) for u in own.usage} == {(OWNER, OWNER), ("prj_team", OWNER)}
    viewer = feedback.md("usr_mate", extra={"project": "prj_team", "project_role": "viewer"})
    details = await _fails(
        feedback.stub.GetUsage(
            feedback_pb2.GetUsageRequest(project_id="prj_team"), metadata=viewer
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "needs its owner role, and yours is viewer" in details
    details = await _fails(
        feedback.stub.ExportUsage(
            feedback_pb2.ExportUsageRequest(project_id="prj_other"), metadata=owner
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "acts in project prj_team, not prj_other" in details
