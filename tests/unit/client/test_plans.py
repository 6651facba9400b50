"""The SDK's plan calls: their REST mapping is the protos' own, the gRPC request says the
same, results are typed, empty ids are refused before sending; and both gRPC clients
against a real auth service in process: an admin puts a user and a project on a plan, the
user's next token carries it, a non-admin is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest

from gouache.client import (
    PLANS,
    AsyncGouacheGrpcClient,
    GouacheGrpcClient,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    plans,
)
from gouache.client.operations import Operation
from gouache.priority import TIERS
from tests.unit.auth.conftest import AuthHarness, auth
from tests.unit.client.test_projects import _http_rule

__all__ = ["auth"]

PRJ = "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"
OPERATIONS: list[Operation[Any]] = [
    plans.set_user_plan("usr_1", "pro"),
    plans.set_project_plan(PRJ, "enterprise"),
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.method)
def test_each_call_is_the_protos_rest_mapping(operation: Operation[Any]) -> None:
    assert operation.http == _http_rule(operation)
    request = operation.grpc_request()
    for name, value in operation.fields.items():
        assert getattr(request, name) == value


def test_rest_requests_and_typed_results() -> None:
    put = plans.set_user_plan("usr_1", "pro").rest()
    assert (put.method, put.path, put.json) == ("PUT", "/v1/users/usr_1/plan", {"plan": "pro"})
    put = plans.set_project_plan(PRJ, "free").rest()
    assert (put.method, put.path, put.json) == ("PUT", f"/v1/projects/{PRJ}/plan", {"plan": "free"})
    change = plans.set_project_plan(PRJ, "pro").parse(
        {"project_id": PRJ, "plan": "pro", "previous_plan": "free"}
    )
    assert (change.subject_id, change.plan, change.previous_plan, change.changed) == (
        PRJ,
        "pro",
        "free",
        True,
    )
    assert PLANS == TIERS


@pytest.mark.parametrize("call", [plans.set_user_plan, plans.set_project_plan])
def test_empty_ids_are_refused_before_sending(call: Any) -> None:
    with pytest.raises(ValueError, match="is required"):
        call("  ", "pro")


async def test_grpc_clients_set_plans_that_reach_the_next_token(auth: AuthHarness) -> None:
    target = f"127.0.0.1:{auth.running.port}"
    async with AsyncGouacheGrpcClient(target, auth.user_key) as user:
        made = await user.create_project("Studio")
        with pytest.raises(PermissionDeniedError):
            await user.set_user_plan(auth.user_id, "enterprise")
    async with AsyncGouacheGrpcClient(target, auth.admin_key) as admin:
        change = await admin.set_user_plan(auth.user_id, "pro")
        assert (change.subject_id, change.previous_plan, change.plan) == (
            auth.user_id,
            "free",
            "pro",
        )
        with pytest.raises(InvalidArgumentError, match="plan must be one of"):
            await admin.set_project_plan(made.project_id, "gold")
        with pytest.raises(NotFoundError, match=f"no project {PRJ}"):
            await admin.set_project_plan(PRJ, "pro")
    # The blocking client runs in a thread: the service answers on this test's event loop.
    await asyncio.to_thread(_blocking, target, auth, made.project_id)


def _blocking(target: str, auth: AuthHarness, project_id: str) -> None:
    with GouacheGrpcClient(target, auth.admin_key) as admin:
        assert admin.set_project_plan(project_id, "enterprise").plan == "enterprise"
    with GouacheGrpcClient(target, auth.user_key) as personal:
        claims = jwt.decode(personal.token(), options={"verify_signature": False})
        assert claims["plan"] == "pro"
        assert [p.plan for p in personal.list_projects()] == ["pro", "enterprise"]
    with GouacheGrpcClient(target, auth.user_key, project=project_id) as acting:
        claims = jwt.decode(acting.token(), options={"verify_signature": False})
        assert claims["plan"] == "enterprise"
