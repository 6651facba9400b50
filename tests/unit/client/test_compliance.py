"""The SDK's deletion, erasure and audit calls: their REST mapping is the protos' own, the
gRPC request says the same, results are typed, bad arguments are refused before anything is
sent; and both gRPC clients read the audit log of a real auth service in process, filtered
and paged (deleting and erasing through the edge: tests/e2e/test_sdk.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from gouache.client import (
    AsyncGouacheGrpcClient,
    AuditEvent,
    GouacheGrpcClient,
    InvalidArgumentError,
    PermissionDeniedError,
    compliance,
)
from gouache.client.operations import Operation
from tests.unit.auth.conftest import AuthHarness, auth

__all__ = ["auth"]

SINCE = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OPERATIONS: list[Operation[Any]] = [
    compliance.delete_image("img_1"),
    compliance.delete_job("job_1"),
    compliance.erase_user("usr_1"),
    compliance.list_audit_events(SINCE, "usr_1", "job.deleted", 10, "tok"),
]


def _http_rule(operation: Operation[Any]) -> str:
    method = descriptor_pool.Default().FindMethodByName(f"{operation.service}.{operation.method}")
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    assert verb is not None
    return f"{verb.upper()} {getattr(rule, verb)}"


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.method)
def test_each_call_is_the_protos_rest_mapping(operation: Operation[Any]) -> None:
    assert operation.http == _http_rule(operation)
    request = operation.grpc_request()
    for name, value in operation.fields.items():
        if name == "since":
            assert request.since.ToDatetime(tzinfo=UTC) == SINCE
        else:
            assert getattr(request, name) == value


def test_rest_requests() -> None:
    image = compliance.delete_image("img_1").rest()
    assert (image.method, image.path, image.params, image.json) == (
        "DELETE",
        "/v1/images/img_1",
        {},
        None,
    )
    job = compliance.delete_job("job_1").rest()
    assert (job.method, job.path) == ("DELETE", "/v1/jobs/job_1")
    erase = compliance.erase_user("usr_1").rest()
    assert (erase.method, erase.path, erase.json) == ("POST", "/v1/users/usr_1:erase", {})
    audit = compliance.list_audit_events(SINCE, "usr_1", "job.deleted", 10, "tok").rest()
    assert (audit.method, audit.path) == ("GET", "/v1/audit")
    assert audit.params == {
        "since": "2026-11-30T12:00:00Z",
        "actor_id": "usr_1",
        "action": "job.deleted",
        "page_size": "10",
        "page_token": "tok",
    }
    assert compliance.list_audit_events(None, "", "", 0, "").rest().params == {}


def test_results_are_typed() -> None:
    assert compliance.delete_job("job_1").parse({"job_id": "job_1"}) == "job_1"
    assert compliance.delete_image("img_1").parse({"image_id": "img_1"}) == "img_1"
    erasure = compliance.erase_user("usr_1").parse(
        {
            "user_id": "usr_1",
            "status": "done",
            "requested_at": "2026-11-30T12:00:00Z",
            "finished_at": "2026-11-30T12:00:03.5Z",
            "last_error": "",
        }
    )
    assert (erasure.user_id, erasure.done, erasure.last_error) == ("usr_1", True, "")
    assert erasure.finished_at == SINCE + timedelta(seconds=3.5)
    assert not compliance.erase_user("usr_1").parse({"status": "pending"}).done
    page = compliance.list_audit_events(None, "", "", 0, "").parse(
        {
            "events": [
                {
                    "event_id": "aud_1",
                    "at": "2026-11-30T12:00:00Z",
                    "actor_id": "usr_1",
                    "action": "job.deleted",
                    "target": "job:job_1",
                    "subject_id": "usr_1",
                    "service": "jobs",
                    "detail": "",
                }
            ],
            "next_page_token": "more",
        }
    )
    (event,) = page.items
    assert isinstance(event, AuditEvent)
    assert (event.action, event.target, event.service, event.at) == (
        "job.deleted",
        "job:job_1",
        "jobs",
        SINCE,
    )
    assert event["event_id"] == "aud_1"
    assert page.next_page_token == "more"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: compliance.delete_job(""), "job_id is required"),
        (lambda: compliance.delete_image("  "), "image_id is required"),
        (lambda: compliance.erase_user(""), "user_id is required"),
        (lambda: compliance.list_audit_events(None, "", "", 101, ""), "page_size must be"),
        (
            lambda: compliance.list_audit_events(datetime(2026, 11, 30), "", "", 0, ""),
            "no time zone",
        ),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(make: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        make()


async def test_grpc_clients_read_the_audit_log(auth: AuthHarness) -> None:
    target = f"127.0.0.1:{auth.running.port}"
    async with AsyncGouacheGrpcClient(target, auth.user_key) as user:
        made = [await user.create_project(f"Audited {n}") for n in range(3)]
        with pytest.raises(PermissionDeniedError):
            await user.list_audit_events()
    async with AsyncGouacheGrpcClient(target, auth.admin_key) as admin:
        first = await admin.list_audit_events(
            actor_id=auth.user_id, action="project.created", page_size=2
        )
        assert [e.target for e in first.items] == [
            f"project:{made[2].project_id}",
            f"project:{made[1].project_id}",
        ]
        assert first.next_page_token
        every = [
            e
            async for e in admin.iter_audit_events(actor_id=auth.user_id, action="project.created")
        ]
        assert [e.target for e in every] == [f"project:{p.project_id}" for p in reversed(made)]
        assert all(e.service == "auth" and e.at is not None for e in every)
        later = datetime.now(UTC) + timedelta(hours=1)
        assert (await admin.list_audit_events(since=later)).items == ()
        with pytest.raises(InvalidArgumentError):
            await admin.list_audit_events(page_token="not a token")
    await asyncio.to_thread(_blocking_reads, target, auth, made[0].project_id)


def _blocking_reads(target: str, auth: AuthHarness, project_id: str) -> None:
    with GouacheGrpcClient(target, auth.admin_key) as admin:
        (event,) = [
            e
            for e in admin.iter_audit_events(action="project.created")
            if e.target == f"project:{project_id}"
        ]
        assert (event.actor_id, event.subject_id) == (auth.user_id, auth.user_id)
