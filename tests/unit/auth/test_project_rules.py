"""The project rules without a database: names, roles, ids, the last owner, scope masking,
and the claims of a token that acts in a project."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gouache.runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.auth.domain.projects import (
    MAX_MEMBERS,
    MAX_PROJECT_NAME_CHARS,
    Member,
    check_member_room,
    check_owners_remain,
    is_personal,
    project_scopes,
    validate_project_id,
    validate_project_name,
    validate_project_role,
    validate_user_id,
)
from services.auth.domain.rules import token_claims

NOW = datetime(2026, 11, 30, tzinfo=UTC)
PRJ = "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"
USER_SCOPES = ("read:jobs", "write:jobs", "read:models", "write:webhooks")


def _members(*roles: str) -> list[Member]:
    return [Member(PRJ, f"usr_{i}", role, NOW, "usr_0") for i, role in enumerate(roles)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Marketing", "Marketing"), ("  Team 42  ", "Team 42"), ("Ünïcødé ✓", "Ünïcødé ✓")],
)
def test_project_names_are_trimmed_printable_text(name: str, expected: str) -> None:
    assert validate_project_name(name) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "name_missing"),
        ("   ", "name_missing"),
        ("x" * (MAX_PROJECT_NAME_CHARS + 1), "name_too_long"),
        ("two\nlines", "name_invalid"),
        ("nul\x00", "name_invalid"),
    ],
)
def test_bad_project_names_are_invalid_argument(name: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_project_name(name)
    assert caught.value.reason == reason
    assert caught.value.field == "name"


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", "owner"), ("Editor", "editor"), (" viewer ", "viewer")]
)
def test_project_roles(role: str, expected: str) -> None:
    assert validate_project_role(role) == expected


@pytest.mark.parametrize("role", ["", "admin", "user", "reader", "owners"])
def test_unknown_project_roles_are_invalid_argument(role: str) -> None:
    with pytest.raises(InvalidArgument, match="owner, editor, viewer"):
        validate_project_role(role)


@pytest.mark.parametrize("project_id", [PRJ, "usr_01JDX0ZQ3N4M5P6Q7R8S9T0V1W", "usr_1"])
def test_project_ids_are_shared_or_personal(project_id: str) -> None:
    assert validate_project_id(project_id) == project_id
    assert is_personal(project_id) == (not project_id.startswith("prj_"))


@pytest.mark.parametrize(
    ("project_id", "says"),
    [
        ("", "is required"),
        ("prj_", "not a project id"),
        ("prj_01jdx0zq3n4m5p6q7r8s9t0v1w", "not a project id"),
        (PRJ + "X", "not a project id"),
        ("prj_01JDX0ZQ3N4M5P6Q7R8S9T0VIL", "not a project id"),
        ("../etc/passwd", "neither a project id"),
        ("a" * 41, "neither a project id"),
    ],
)
def test_malformed_project_ids_are_invalid_argument(project_id: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        validate_project_id(project_id)


@pytest.mark.parametrize("user_id", ["", "usr 1", "usr_1;drop", "x" * 41])
def test_malformed_user_ids_are_invalid_argument(user_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_user_id(user_id)
    assert caught.value.field == "user_id"


@pytest.mark.parametrize(
    ("roles", "user", "new_role", "refused"),
    [
        (("owner",), "usr_0", "editor", True),
        (("owner",), "usr_0", "viewer", True),
        (("owner",), "usr_0", None, True),
        (("owner",), "usr_0", "owner", False),
        (("owner", "owner"), "usr_0", "viewer", False),
        (("owner", "owner"), "usr_1", None, False),
        (("owner", "editor"), "usr_1", None, False),
        (("owner", "editor"), "usr_1", "viewer", False),
        (("owner", "viewer"), "usr_2", "editor", False),
    ],
)
def test_the_last_owner_can_be_neither_removed_nor_demoted(
    roles: tuple[str, ...], user: str, new_role: str | None, refused: bool
) -> None:
    members = _members(*roles)
    if not refused:
        check_owners_remain(members, user, new_role, PRJ)
        return
    with pytest.raises(FailedPrecondition) as caught:
        check_owners_remain(members, user, new_role, PRJ)
    assert caught.value.reason == "last_owner"
    assert "make another member an owner first" in caught.value.message


def test_a_full_project_takes_no_new_member_but_changes_roles() -> None:
    members = _members("owner", *(["viewer"] * (MAX_MEMBERS - 1)))
    check_member_room(members, "usr_5", PRJ)
    with pytest.raises(FailedPrecondition, match="the most a project may have"):
        check_member_room(members, "usr_new", PRJ)


@pytest.mark.parametrize(
    ("role", "requested", "expected"),
    [
        ("owner", (), USER_SCOPES),
        ("editor", (), USER_SCOPES),
        ("viewer", (), ("read:jobs", "read:models")),
        ("viewer", ("read:jobs",), ("read:jobs", "read:models")),
        ("viewer", ("admin:* read:jobs",), ("read:jobs", "read:models")),
    ],
)
def test_a_viewer_token_loses_every_write_scope(
    role: str, requested: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert project_scopes(role, USER_SCOPES, requested, PRJ) == expected


@pytest.mark.parametrize("requested", [("write:jobs",), ("read:jobs write:webhooks",)])
def test_a_viewer_asking_for_a_write_scope_is_permission_denied(
    requested: tuple[str, ...],
) -> None:
    with pytest.raises(PermissionDenied) as caught:
        project_scopes("viewer", USER_SCOPES, requested, PRJ)
    assert caught.value.reason == "scope_not_allowed"
    assert f"viewer of {PRJ}" in caught.value.message


@pytest.mark.parametrize(
    ("project", "role", "expected"),
    [("", "", {}), (PRJ, "editor", {"project": PRJ, "project_role": "editor"})],
)
def test_token_claims_name_the_project_only_when_there_is_one(
    project: str, role: str, expected: dict[str, str]
) -> None:
    claims = token_claims(
        user_id="usr_1",
        role="user",
        email="a@example.com",
        scopes=USER_SCOPES,
        now=NOW,
        ttl_s=60,
        issuer="i",
        audience="a",
        project=project,
        project_role=role,
    )
    assert {k: v for k, v in claims.items() if k.startswith("project")} == expected
