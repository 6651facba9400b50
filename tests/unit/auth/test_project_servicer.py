"""Projects over gRPC in process: the five RPCs, tokens that act in a project (JSON and the
OAuth2 form), WhoAmI, the audit trail, and DeleteAccount removing memberships."""

from __future__ import annotations

from typing import Any

import grpc
import jwt
import pytest

from gouache.contracts.auth.v1 import auth_pb2
from services.auth.bootstrap import ensure_service_account
from tests.unit.auth.conftest import USER_EMAIL, USER_PASSWORD, AuthHarness, bearer
from tests.unit.auth.test_oauth2 import _split, _token, basic

ALL_USER_SCOPES = "read:jobs write:jobs read:models write:webhooks"


async def _fails(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details: str = caught.value.details() or ""
    assert details
    return details


async def _second_user(auth: AuthHarness) -> tuple[str, str]:
    """Another user, with a password token: (user id, token)."""
    created = await auth.stub.CreateUser(
        auth_pb2.CreateUserRequest(email="second@example.com", password=USER_PASSWORD),
        metadata=bearer(auth.admin_token),
    )
    issued = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="password", email="second@example.com", password=USER_PASSWORD
        )
    )
    return created.user_id, issued.access_token


async def _project(auth: AuthHarness, name: str = "Team") -> str:
    created = await auth.stub.CreateProject(
        auth_pb2.CreateProjectRequest(name=name), metadata=bearer(auth.user_token)
    )
    project_id: str = created.project.project_id
    return project_id


async def _put(auth: AuthHarness, token: str, project_id: str, user_id: str, role: str) -> Any:
    return await auth.stub.PutProjectMember(
        auth_pb2.PutProjectMemberRequest(project_id=project_id, user_id=user_id, role=role),
        metadata=bearer(token),
    )


async def _issue(auth: AuthHarness, project: str, *scopes: str) -> Any:
    return await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="client_credentials", api_key=auth.user_key, project=project, scopes=scopes
        )
    )


async def test_create_list_get_and_manage_members(auth: AuthHarness) -> None:
    other_id, other_token = await _second_user(auth)
    project_id = await _project(auth, "Marketing")
    listed = await auth.stub.ListProjects(
        auth_pb2.ListProjectsRequest(), metadata=bearer(auth.user_token)
    )
    assert [(p.project_id, p.role, p.personal) for p in listed.projects] == [
        (auth.user_id, "owner", True),
        (project_id, "owner", False),
    ]
    member = await _put(auth, auth.user_token, project_id, other_id, "editor")
    assert (member.member.user_id, member.member.role) == (other_id, "editor")
    assert member.member.email == "second@example.com"
    got = await auth.stub.GetProject(
        auth_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(other_token)
    )
    assert got.project.name == "Marketing"
    assert got.project.role == "editor"
    assert [(m.user_id, m.role) for m in got.members] == [
        (auth.user_id, "owner"),
        (other_id, "editor"),
    ]
    # The editor manages no members; leaving is allowed.
    details = await _fails(
        _put(auth, other_token, project_id, other_id, "owner"), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "only its owners manage members" in details
    await auth.stub.RemoveProjectMember(
        auth_pb2.RemoveProjectMemberRequest(project_id=project_id, user_id=other_id),
        metadata=bearer(other_token),
    )
    await _fails(
        auth.stub.GetProject(
            auth_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(other_token)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    events = await auth.stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(), metadata=bearer(auth.admin_token)
    )
    trail = [
        (e.action, e.subject_id, e.detail)
        for e in reversed(events.events)
        if e.target == f"project:{project_id}"
    ]
    assert trail == [
        ("project.created", auth.user_id, ""),
        ("project.member_added", other_id, "role=editor"),
        ("project.member_removed", other_id, ""),
    ]
    await _put(auth, auth.user_token, project_id, other_id, "viewer")
    await _put(auth, auth.user_token, project_id, other_id, "editor")
    events = await auth.stub.ListAuditEvents(
        auth_pb2.ListAuditEventsRequest(action="project.member_role_changed"),
        metadata=bearer(auth.admin_token),
    )
    assert [e.detail for e in events.events] == ["role=viewer->editor"]


@pytest.mark.parametrize(
    ("request_fields", "code", "says"),
    [
        ({"project_id": "prj_bad"}, grpc.StatusCode.INVALID_ARGUMENT, "not a project id"),
        ({"user_id": "no such"}, grpc.StatusCode.INVALID_ARGUMENT, "not a user id"),
        ({"user_id": "usr_nobody"}, grpc.StatusCode.NOT_FOUND, "does not exist"),
        ({"role": "admin"}, grpc.StatusCode.INVALID_ARGUMENT, "owner, editor, viewer"),
        ({"role": ""}, grpc.StatusCode.INVALID_ARGUMENT, "role must be"),
        ({"project_id": "OWN"}, grpc.StatusCode.FAILED_PRECONDITION, "personal project"),
        (
            {"project_id": "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"},
            grpc.StatusCode.NOT_FOUND,
            "no project prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W for this user",
        ),
        ({"user_id": "SELF", "role": "viewer"}, grpc.StatusCode.FAILED_PRECONDITION, "last owner"),
    ],
)
async def test_bad_member_requests_get_precise_statuses(
    auth: AuthHarness, request_fields: dict[str, str], code: grpc.StatusCode, says: str
) -> None:
    other_id, _ = await _second_user(auth)
    fields = {"project_id": await _project(auth), "user_id": other_id, "role": "viewer"}
    fields.update(request_fields)
    fields = {k: {"OWN": auth.user_id, "SELF": auth.user_id}.get(v, v) for k, v in fields.items()}
    details = await _fails(
        auth.stub.PutProjectMember(
            auth_pb2.PutProjectMemberRequest(**fields), metadata=bearer(auth.user_token)
        ),
        code,
    )
    assert says in details


async def test_bad_project_requests_get_precise_statuses(auth: AuthHarness) -> None:
    user = bearer(auth.user_token)
    cases = [
        (auth_pb2.CreateProjectRequest(name="x" * 101), grpc.StatusCode.INVALID_ARGUMENT, "at most 100"),
        (auth_pb2.CreateProjectRequest(name=""), grpc.StatusCode.INVALID_ARGUMENT, "name is required"),
        (auth_pb2.ListProjectsRequest(all=True), grpc.StatusCode.PERMISSION_DENIED, "only admins"),
        (auth_pb2.ListProjectsRequest(page_size=-1), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        (auth_pb2.GetProjectRequest(project_id=""), grpc.StatusCode.INVALID_ARGUMENT, "is required"),
        (auth_pb2.GetProjectRequest(project_id="usr_other"), grpc.StatusCode.NOT_FOUND, "no project usr_other"),
    ]  # fmt: skip
    methods = {
        auth_pb2.CreateProjectRequest: auth.stub.CreateProject,
        auth_pb2.ListProjectsRequest: auth.stub.ListProjects,
        auth_pb2.GetProjectRequest: auth.stub.GetProject,
    }
    for request, code, says in cases:
        assert says in await _fails(methods[type(request)](request, metadata=user), code)
    await _fails(
        auth.stub.ListProjects(auth_pb2.ListProjectsRequest()), grpc.StatusCode.UNAUTHENTICATED
    )


async def test_tokens_act_in_a_project_with_the_members_role(auth: AuthHarness) -> None:
    project_id = await _project(auth)
    issued = await _issue(auth, project_id)
    assert (issued.project_id, issued.project_role, issued.scope) == (
        project_id,
        "owner",
        ALL_USER_SCOPES,
    )
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert (claims["project"], claims["project_role"]) == (project_id, "owner")
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(issued.access_token))
    assert (me.project_id, me.project_role) == (project_id, "owner")
    # Without a project, or naming the personal one: no claim, the personal project.
    for project in ("", auth.user_id):
        issued = await _issue(auth, project)
        claims = jwt.decode(issued.access_token, options={"verify_signature": False})
        assert "project" not in claims
        assert (issued.project_id, issued.project_role) == (auth.user_id, "owner")
    me = await auth.stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(auth.user_token))
    assert (me.project_id, me.project_role) == (auth.user_id, "owner")


async def test_a_viewers_token_has_no_write_scope_and_strangers_get_not_found(
    auth: AuthHarness,
) -> None:
    other_id, _ = await _second_user(auth)
    admin_project = await auth.stub.CreateProject(
        auth_pb2.CreateProjectRequest(name="Admins'"), metadata=bearer(auth.admin_token)
    )
    project_id = admin_project.project.project_id
    await _put(auth, auth.admin_token, project_id, auth.user_id, "viewer")
    issued = await _issue(auth, project_id)
    assert (issued.project_role, issued.scope) == ("viewer", "read:jobs read:models")
    details = await _fails(
        _issue(auth, project_id, "write:jobs"), grpc.StatusCode.PERMISSION_DENIED
    )
    assert f"viewer of {project_id}" in details
    # Not a member: NOT_FOUND, as for a project that does not exist.
    mine = await _project(auth)
    stranger = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="password", email="second@example.com", password=USER_PASSWORD
        )
    )
    assert stranger.project_id == other_id
    for project in (mine, auth.user_id, "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"):
        details = await _fails(
            auth.stub.IssueToken(
                auth_pb2.IssueTokenRequest(
                    grant_type="password",
                    email="second@example.com",
                    password=USER_PASSWORD,
                    project=project,
                )
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        assert f"no project {project} for this user" in details
    await _fails(_issue(auth, "prj_1"), grpc.StatusCode.INVALID_ARGUMENT)
    # An admin may name any shared project, as owner.
    admin = await auth.stub.IssueToken(
        auth_pb2.IssueTokenRequest(
            grant_type="client_credentials", api_key=auth.admin_key, project=mine
        )
    )
    assert (admin.project_id, admin.project_role) == (mine, "owner")


async def test_the_oauth2_form_takes_a_project(auth: AuthHarness) -> None:
    project_id = await _project(auth)
    key_id, secret = _split(auth.user_key)
    status, _, document = await _token(
        auth,
        f"grant_type=client_credentials&project={project_id}",
        authorization=basic(key_id, secret),
    )
    assert status == 200
    claims = jwt.decode(document["access_token"], options={"verify_signature": False})
    assert (claims["project"], claims["project_role"]) == (project_id, "owner")
    for project, says in (
        ("prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W", "no project prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"),
        ("prj_x", "not a project id"),
    ):
        status, _, document = await _token(
            auth,
            f"grant_type=client_credentials&project={project}",
            authorization=basic(key_id, secret),
        )
        assert (status, document["error"]) == (400, "invalid_request")
        assert says in document["error_description"]


async def test_delete_account_removes_memberships(auth: AuthHarness) -> None:
    other_id, _ = await _second_user(auth)
    project_id = await _project(auth)
    await _put(auth, auth.user_token, project_id, other_id, "editor")
    service = await ensure_service_account(auth.settings, "jobs")
    service_token = await auth.token(service)
    deleted = await auth.stub.DeleteAccount(
        auth_pb2.DeleteAccountRequest(user_id=other_id), metadata=bearer(service_token)
    )
    assert (deleted.deleted, deleted.project_memberships_deleted) == (True, 1)
    got = await auth.stub.GetProject(
        auth_pb2.GetProjectRequest(project_id=project_id), metadata=bearer(auth.user_token)
    )
    assert [m.user_id for m in got.members] == [auth.user_id]
    assert USER_EMAIL in [m.email for m in got.members]
