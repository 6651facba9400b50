"""The SDK's project calls: their REST mapping is the protos' own, the gRPC request says the
same, results are typed; and both gRPC clients against a real auth service in process,
acting in a project with project=."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from gouache.client import (
    AsyncGouacheGrpcClient,
    FailedPreconditionError,
    GouacheGrpcClient,
    InvalidArgumentError,
    NotFoundError,
    projects,
)
from gouache.client import operations as ops
from gouache.client.operations import Operation
from gouache.contracts.auth.v1 import auth_pb2
from tests.unit.auth.conftest import AuthHarness, auth, bearer

__all__ = ["auth"]

PRJ = "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"
OPERATIONS: list[Operation[Any]] = [
    projects.create_project("Team"),
    projects.list_projects(True, 10, "tok"),
    projects.get_project(PRJ),
    projects.put_project_member(PRJ, "usr_1", "editor"),
    projects.remove_project_member(PRJ, "usr_1"),
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
        assert getattr(request, name) == value


def test_rest_requests() -> None:
    put = projects.put_project_member(PRJ, "usr_1", "viewer").rest()
    assert (put.method, put.path, put.json) == (
        "PUT",
        f"/v1/projects/{PRJ}/members/usr_1",
        {"role": "viewer"},
    )
    listed = projects.list_projects(True, 10, "tok").rest()
    assert listed.params == {"all": "true", "page_size": "10", "page_token": "tok"}
    assert projects.list_projects(False, 0, "").rest().params == {}
    assert not projects.create_project("Team").repeatable
    token = ops.issue_token("gk_x", PRJ)
    assert token.fields == {"grant_type": "client_credentials", "api_key": "gk_x", "project": PRJ}
    assert "project" not in ops.issue_token("gk_x").fields


def test_results_are_typed() -> None:
    detail = projects.get_project(PRJ).parse(
        {
            "project": {"project_id": PRJ, "name": "Team", "role": "owner", "personal": False},
            "members": [
                {"user_id": "usr_1", "email": "a@example.com", "role": "owner"},
                {"user_id": "usr_2", "role": "viewer", "added_at": "2026-11-30T12:00:00Z"},
            ],
        }
    )
    assert (detail.project.project_id, detail.project.role) == (PRJ, "owner")
    assert [(m.user_id, m.role) for m in detail.members] == [
        ("usr_1", "owner"),
        ("usr_2", "viewer"),
    ]
    assert detail.members[1].added_at is not None
    assert detail["project"]["name"] == "Team"


async def test_grpc_clients_manage_projects_and_act_in_one(auth: AuthHarness) -> None:
    target = f"127.0.0.1:{auth.running.port}"
    other = await auth.stub.CreateUser(
        auth_pb2.CreateUserRequest(email="other@example.com", password="another long password"),
        metadata=bearer(auth.admin_token),
    )
    async with AsyncGouacheGrpcClient(target, auth.user_key) as client:
        made = await client.create_project("Studio")
        assert (made.role, made.personal) == ("owner", False)
        member = await client.put_project_member(made.project_id, other.user_id, "viewer")
        assert (member.email, member.role) == ("other@example.com", "viewer")
        listed = await client.list_projects()
        assert [p.project_id for p in listed] == [auth.user_id, made.project_id]
        with pytest.raises(FailedPreconditionError, match="last owner"):
            await client.put_project_member(made.project_id, auth.user_id, "viewer")
        with pytest.raises(InvalidArgumentError, match="role must be"):
            await client.put_project_member(made.project_id, other.user_id, "boss")
    # The blocking client runs in a thread: the service answers on this test's event loop.
    await asyncio.to_thread(_act_in, target, auth, made.project_id, other.user_id)


def _act_in(target: str, auth: AuthHarness, project_id: str, other_id: str) -> None:
    with GouacheGrpcClient(target, auth.user_key, project=project_id) as acting:
        claims = jwt.decode(acting.token(), options={"verify_signature": False})
        assert (claims["project"], claims["project_role"]) == (project_id, "owner")
        detail = acting.get_project(project_id)
        assert {m.user_id for m in detail.members} == {auth.user_id, other_id}
        acting.remove_project_member(project_id, other_id)
        assert [m.user_id for m in acting.get_project(project_id).members] == [auth.user_id]
    with (
        GouacheGrpcClient(target, auth.admin_key, project=PRJ) as stranger,
        pytest.raises(NotFoundError, match=f"no project {PRJ}"),
    ):
        stranger.token()
