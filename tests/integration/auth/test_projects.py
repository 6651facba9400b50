"""Projects and members on SQLite and PostgreSQL: the use cases over the real store, the
last-owner rule under concurrent demotions, paging, tokens' projects, and erasure."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gouache.db import create_engine, new_id
from gouache.runtime.audit import pseudonym
from gouache.runtime.context import Principal
from gouache.runtime.errors import (
    FailedPrecondition,
    GouacheError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.auth.domain import Projects, User
from services.auth.domain.projects import token_project
from services.auth.store import AuthDatabase

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ADMIN = Principal(user_id="usr_admin", role="admin", email="admin@example.com")
ANN = Principal(user_id="usr_ann", role="user", email="ann@example.com")
BOB = Principal(user_id="usr_bob", role="user", email="bob@example.com")
CY = Principal(user_id="usr_cy", role="user", email="cy@example.com")


@dataclass
class World:
    database: AuthDatabase
    projects: Projects


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    database = AuthDatabase(create_engine(db_url))
    await database.create_schema()
    ticks = itertools.count()
    for who in (ADMIN, ANN, BOB, CY):
        await database.add_user(User(who.user_id, who.email, "", who.role, None, NOW))
    projects = Projects(
        database,
        clock=lambda: NOW.replace(second=next(ticks) % 60),
        new_id=lambda: new_id("prj"),
    )
    try:
        yield World(database, projects)
    finally:
        await database.close()


async def _code(call: object) -> GouacheError:
    with pytest.raises(GouacheError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_create_get_and_list_with_the_personal_project_first(world: World) -> None:
    created = await world.projects.create(ANN, "  Marketing ")
    project_id = created.project.project_id
    assert project_id.startswith("prj_")
    assert len(project_id) == 30
    assert (created.project.name, created.role, created.personal) == ("Marketing", "owner", False)
    detail = await world.projects.get(ANN, project_id)
    assert [(m.user_id, m.email, m.role) for m in detail.members] == [
        ("usr_ann", "ann@example.com", "owner")
    ]
    views, token = await world.projects.list(ANN, all_projects=False, page_size=0, page_token="")
    assert token == ""
    assert [(v.project.project_id, v.role, v.personal) for v in views] == [
        ("usr_ann", "owner", True),
        (project_id, "owner", False),
    ]
    assert views[0].project.created_at == NOW
    personal = await world.projects.get(ANN, "usr_ann")
    assert personal.view.personal
    assert [(m.user_id, m.role) for m in personal.members] == [("usr_ann", "owner")]


async def test_another_users_project_is_not_found_and_admins_see_any(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Secret")).project.project_id
    for target in (project_id, "usr_ann", "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W"):
        error = await _code(world.projects.get(BOB, target))
        assert isinstance(error, NotFound), error
        assert f"no project {target} for this user" in error.message
    seen = await world.projects.get(ADMIN, project_id)
    assert seen.view.role == "owner"
    views, _ = await world.projects.list(ADMIN, all_projects=True, page_size=0, page_token="")
    assert [v.project.project_id for v in views] == [project_id]
    error = await _code(world.projects.list(BOB, all_projects=True, page_size=0, page_token=""))
    assert isinstance(error, PermissionDenied)


async def test_members_roles_and_the_last_owner(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Team")).project.project_id
    added = await world.projects.put_member(ANN, project_id, "usr_bob", "Editor")
    assert (added.member.role, added.previous_role, added.member.email) == (
        "editor",
        "",
        "bob@example.com",
    )
    changed = await world.projects.put_member(ANN, project_id, "usr_bob", "viewer")
    assert (changed.member.role, changed.previous_role) == ("viewer", "editor")
    assert changed.member.added_at == added.member.added_at
    # A viewer or an editor manages no members.
    error = await _code(world.projects.put_member(BOB, project_id, "usr_cy", "viewer"))
    assert isinstance(error, PermissionDenied)
    assert "only its owners" in error.message
    error = await _code(world.projects.put_member(ANN, project_id, "usr_ann", "editor"))
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "last_owner"
    error = await _code(world.projects.remove_member(ANN, project_id, "usr_ann"))
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "last_owner"
    # With a second owner, the first may step down, and a member may leave.
    await world.projects.put_member(ANN, project_id, "usr_cy", "owner")
    await world.projects.put_member(ANN, project_id, "usr_ann", "viewer")
    await world.projects.remove_member(BOB, project_id, "usr_bob")
    detail = await world.projects.get(CY, project_id)
    assert {(m.user_id, m.role) for m in detail.members} == {
        ("usr_ann", "viewer"),
        ("usr_cy", "owner"),
    }
    error = await _code(world.projects.remove_member(CY, project_id, "usr_bob"))
    assert isinstance(error, NotFound)
    assert "not a member" in error.message
    # A former member sees nothing.
    assert isinstance(await _code(world.projects.get(BOB, project_id)), NotFound)


async def test_bad_member_requests(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Team")).project.project_id
    cases: list[tuple[object, type[GouacheError], str]] = [
        (world.projects.put_member(ANN, project_id, "usr_nobody", "viewer"), NotFound, "does not exist"),
        (world.projects.put_member(ANN, project_id, "usr_bob", "admin"), InvalidArgument, "role must be"),
        (world.projects.put_member(ANN, project_id, "bad id!", "viewer"), InvalidArgument, "not a user id"),
        (world.projects.put_member(ANN, "prj_nope", "usr_bob", "viewer"), InvalidArgument, "not a project id"),
        (world.projects.put_member(ANN, "usr_ann", "usr_bob", "viewer"), FailedPrecondition, "personal project"),
        (world.projects.put_member(BOB, "usr_ann", "usr_bob", "viewer"), NotFound, "no project usr_ann"),
        (world.projects.put_member(BOB, project_id, "usr_bob", "owner"), NotFound, "no project"),
        (world.projects.remove_member(ANN, "usr_ann", "usr_ann"), FailedPrecondition, "personal project"),
        (world.projects.create(ANN, "x" * 101), InvalidArgument, "at most 100"),
    ]  # fmt: skip
    for call, kind, says in cases:
        error = await _code(call)
        assert isinstance(error, kind), (error, kind)
        assert says in error.message, error.message


async def test_concurrent_demotions_leave_an_owner(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Race")).project.project_id
    await world.projects.put_member(ANN, project_id, "usr_bob", "owner")
    outcomes = await asyncio.gather(
        world.projects.put_member(ANN, project_id, "usr_ann", "editor"),
        world.projects.put_member(BOB, project_id, "usr_bob", "editor"),
        return_exceptions=True,
    )
    members = await world.database.members(project_id)
    assert [m.role for m in members].count("owner") == 1, outcomes
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], FailedPrecondition), refused[0]
    assert refused[0].reason == "last_owner"


async def test_listing_pages_by_project_id(world: World) -> None:
    made = [(await world.projects.create(ANN, f"P{i}")).project.project_id for i in range(5)]
    seen: list[str] = []
    token = ""
    for _ in range(5):
        views, token = await world.projects.list(
            ANN, all_projects=False, page_size=2, page_token=token
        )
        seen += [v.project.project_id for v in views]
        if not token:
            break
    assert seen == ["usr_ann", *made]
    error = await _code(
        world.projects.list(ANN, all_projects=False, page_size=2, page_token="garbage")
    )
    assert isinstance(error, InvalidArgument)
    assert error.field == "page_token"
    error = await _code(world.projects.list(ANN, all_projects=False, page_size=101, page_token=""))
    assert isinstance(error, InvalidArgument)
    assert error.field == "page_size"


async def test_token_project_for_members_admins_and_strangers(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Team")).project.project_id
    await world.projects.put_member(ANN, project_id, "usr_bob", "viewer")
    db = world.database
    assert await token_project(db, "usr_ann", False, "") is None
    assert await token_project(db, "usr_ann", False, "usr_ann") is None
    acting = await token_project(db, "usr_bob", False, project_id)
    assert acting is not None
    assert (acting.project, acting.role) == (project_id, "viewer")
    acting = await token_project(db, "usr_admin", True, project_id)
    assert acting is not None
    assert acting.role == "owner"
    # An admin who is a member with a lesser role still acts, and manages, as an owner.
    await world.projects.put_member(ANN, project_id, "usr_admin", "viewer")
    acting = await token_project(db, "usr_admin", True, project_id)
    assert acting is not None
    assert acting.role == "owner"
    await world.projects.put_member(ADMIN, project_id, "usr_bob", "editor")
    for user, target in (("usr_cy", project_id), ("usr_cy", "usr_ann"), ("usr_admin", "usr_ann")):
        error = await _code(token_project(db, user, user == "usr_admin", target))
        assert isinstance(error, NotFound)
        assert error.reason == "project_not_found"
    error = await _code(token_project(db, "usr_cy", False, "prj_x"))
    assert isinstance(error, InvalidArgument)
    assert error.field == "project"


async def test_erasure_removes_memberships_and_keeps_the_project(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Team")).project.project_id
    await world.projects.put_member(ANN, project_id, "usr_bob", "owner")
    await world.projects.put_member(ANN, project_id, "usr_cy", "viewer")
    result = await world.database.delete_account("usr_ann")
    assert (result.deleted, result.api_keys, result.memberships) == (True, 0, 1)
    project = await world.database.project(project_id)
    assert project is not None
    assert project.created_by == pseudonym("usr_ann")
    members = await world.database.members(project_id)
    assert {(m.user_id, m.added_by) for m in members} == {
        ("usr_bob", pseudonym("usr_ann")),
        ("usr_cy", pseudonym("usr_ann")),
    }
    again = await world.database.delete_account("usr_ann")
    assert (again.deleted, again.memberships) == (False, 0)
