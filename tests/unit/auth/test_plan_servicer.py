"""Plans over gRPC in process: admins set a user's and a project's plan, tokens (JSON and
the OAuth2 form) carry the acting project's plan, WhoAmI and projects show it, the audit
log records each change, and bad calls get precise statuses."""

from __future__ import annotations

from typing import Any

import grpc
import jwt
import pytest

from gouache.contracts.auth.v1 import auth_pb2
from tests.unit.auth.conftest import USER_PASSWORD, AuthHarness, bearer
from tests.unit.auth.test_oauth2 import _split, _token, basic

UNKNOWN_PROJECT = "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"


async def _fails(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details: str = caught.value.details() or ""
    return details


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _issue(auth: AuthHarness, project: str = "") -> Any:
    return await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="client_credentials", api_key=auth.user_key, project=project
        )
    )


async def _set_user(auth: AuthHarness, token: str, user_id: str, plan: str) -> Any:
    return await auth.stub.SetUserPlan(
        auth_pb2.SetUserPlanRequest(user_id=user_id, plan=plan), metadata=bearer(token)
    )


async def _set_project(auth: AuthHarness, token: str, project_id: str, plan: str) -> Any:
    return await auth.stub.SetProjectPlan(
        auth_pb2.SetProjectPlanRequest(project_id=project_id, plan=plan), metadata=bearer(token)
    )


async def test_a_users_plan_reaches_their_next_token_and_whoami(auth: AuthHarness) -> None:
    before = await _issue(auth)
    assert before.plan == "free"
    assert _claims(before.access_token)["plan"] == "free"
    changed = await _set_user(auth, auth.admin_token, auth.user_id, "Pro")
    assert (changed.user_id, changed.plan, changed.previous_plan) == (auth.user_id, "pro", "free")
    # A token issued before the change keeps its plan until it expires.
    old = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(before.access_token))
    assert old.plan == "free"
    after = await _issue(auth)
    assert (after.plan, _claims(after.access_token)["plan"]) == ("pro", "pro")
    who = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(after.access_token))
    assert who.plan == "pro"
    listed = await auth.stub.ListProjects(
        auth_pb2.ListProjectsRequest(), metadata=bearer(after.access_token)
    )
    assert [(p.personal, p.plan) for p in listed.projects] == [(True, "pro")]
    # The OAuth2 form (client credentials) carries it too.
    key_id, secret = _split(auth.user_key)
    status, _, document = await _token(
        auth, "grant_type=client_credentials", authorization=basic(key_id, secret)
    )
    assert status == 200
    assert _claims(document["access_token"])["plan"] == "pro"
    # The password grant as well.
    password = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="password", email="user@example.com", password=USER_PASSWORD
        )
    )
    assert _claims(password.access_token)["plan"] == "pro"


async def test_a_shared_projects_plan_is_the_plan_of_tokens_acting_in_it(
    auth: AuthHarness,
) -> None:
    created = await auth.stub.CreateProject(
        auth_pb2.CreateProjectRequest(name="Studio"), metadata=bearer(auth.user_token)
    )
    project_id = created.project.project_id
    assert created.project.plan == "free"
    changed = await _set_project(auth, auth.admin_token, project_id, "enterprise")
    assert (changed.project_id, changed.plan, changed.previous_plan) == (
        project_id,
        "enterprise",
        "free",
    )
    in_project = await _issue(auth, project_id)
    assert (in_project.plan, _claims(in_project.access_token)["plan"]) == (
        "enterprise",
        "enterprise",
    )
    personal = await _issue(auth)
    assert personal.plan == "free"
    got = await auth.stub.GetProject(
        auth_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(auth.user_token)
    )
    assert got.project.plan == "enterprise"
    key_id, secret = _split(auth.user_key)
    status, _, document = await _token(
        auth,
        f"grant_type=client_credentials&project={project_id}",
        authorization=basic(key_id, secret),
    )
    assert status == 200
    assert _claims(document["access_token"])["plan"] == "enterprise"
    # A personal project's id sets its user's plan.
    personal_set = await _set_project(auth, auth.admin_token, auth.user_id, "pro")
    assert (personal_set.project_id, personal_set.plan) == (auth.user_id, "pro")
    assert (await _issue(auth)).plan == "pro"


async def test_create_user_takes_a_plan(auth: AuthHarness) -> None:
    created = await auth.stub.CreateUser(
        auth_pb2.CreateUserRequest(email="p@example.com", password=USER_PASSWORD, plan="pro"),
        metadata=bearer(auth.admin_token),
    )
    assert created.plan == "pro"
    issued = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="password", email="p@example.com", password=USER_PASSWORD
        )
    )
    assert _claims(issued.access_token)["plan"] == "pro"
    details = await _fails(
        auth.stub.CreateUser(
            auth_pb2.CreateUserRequest(email="q@example.com", password=USER_PASSWORD, plan="gold"),
            metadata=bearer(auth.admin_token),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "plan must be one of enterprise, pro, free, got 'gold'" in details


async def test_each_change_is_audited_and_a_repeat_is_not(auth: AuthHarness) -> None:
    await _set_user(auth, auth.admin_token, auth.user_id, "pro")
    await _set_user(auth, auth.admin_token, auth.user_id, "pro")
    await _set_user(auth, auth.admin_token, auth.user_id, "enterprise")
    events = await auth.stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(action="plan.changed"), metadata=bearer(auth.admin_token)
    )
    assert [(e.target, e.subject_id, e.detail) for e in events.events] == [
        (f"user:{auth.user_id}", auth.user_id, "plan=pro->enterprise"),
        (f"user:{auth.user_id}", auth.user_id, "plan=free->pro"),
    ]


@pytest.mark.parametrize(
    ("who", "call", "code", "says"),
    [
        ("user", "user", grpc.StatusCode.PERMISSION_DENIED, "admin"),
        ("user", "project", grpc.StatusCode.PERMISSION_DENIED, "admin"),
        ("admin", "unknown_user", grpc.StatusCode.NOT_FOUND, "user usr_nobody does not exist"),
        ("admin", "unknown_project", grpc.StatusCode.NOT_FOUND, f"no project {UNKNOWN_PROJECT}"),
        ("admin", "bad_plan", grpc.StatusCode.INVALID_ARGUMENT, "one of enterprise, pro, free"),
        ("admin", "no_plan", grpc.StatusCode.INVALID_ARGUMENT, "got nothing"),
        ("admin", "bad_user_id", grpc.StatusCode.INVALID_ARGUMENT, "is not a user id"),
        ("admin", "bad_project_id", grpc.StatusCode.INVALID_ARGUMENT, "is not a project id"),
    ],
)
async def test_bad_plan_calls_get_precise_statuses(
    auth: AuthHarness, who: str, call: str, code: grpc.StatusCode, says: str
) -> None:
    token = auth.admin_token if who == "admin" else auth.user_token
    calls = {
        "user": lambda: _set_user(auth, token, auth.user_id, "enterprise"),
        "project": lambda: _set_project(auth, token, UNKNOWN_PROJECT, "enterprise"),
        "unknown_user": lambda: _set_user(auth, token, "usr_nobody", "pro"),
        "unknown_project": lambda: _set_project(auth, token, UNKNOWN_PROJECT, "pro"),
        "bad_plan": lambda: _set_user(auth, token, auth.user_id, "gold"),
        "no_plan": lambda: _set_user(auth, token, auth.user_id, ""),
        "bad_user_id": lambda: _set_user(auth, token, "usr/../x", "pro"),
        "bad_project_id": lambda: _set_project(auth, token, "prj_x", "pro"),
    }
    details = await _fails(calls[call](), code)
    assert says in details
    # Nothing changed: the user's next token is still on the free plan.
    assert (await _issue(auth)).plan == "free"
