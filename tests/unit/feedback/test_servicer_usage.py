"""GetUsage's compute and periods, and ExportUsage's CSV, over a real gRPC server."""

from __future__ import annotations

import csv
import io

import grpc

from gouache.contracts.feedback.v1 import feedback_pb2
from services.feedback.usage_csv import COLUMNS
from tests.unit.feedback.test_servicer import OWNER, Harness, _fails, feedback

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
