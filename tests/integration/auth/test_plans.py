"""Plans on SQLite and PostgreSQL: the store keeps a user's and a project's plan, the admin
use cases set them (unknown ids NOT_FOUND), a token's project carries its plan, and
concurrent changes each see the plan the other left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gouache.db import create_engine, new_id
from gouache.runtime.context import Principal
from gouache.runtime.errors import NotFound, PermissionDenied
from services.auth.domain import Projects, User
from services.auth.domain.plans import Plans
from services.auth.domain.projects import token_project
from services.auth.store import AuthDatabase

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ADMIN = Principal(user_id="usr_admin", role="admin", email="admin@example.com")
ANN = Principal(user_id="usr_ann", role="user", email="ann@example.com")


@dataclass
class World:
    database: AuthDatabase
    projects: Projects
    plans: Plans


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    database = AuthDatabase(create_engine(db_url))
    await database.create_schema()
    await database.add_user(User("usr_admin", ADMIN.email, "", "admin", None, NOW))
    await database.add_user(User("usr_ann", ANN.email, "", "user", None, NOW))
    await database.add_user(User("usr_pro", "pro@example.com", "", "user", None, NOW, "pro"))
    try:
        yield World(
            database,
            Projects(database, clock=lambda: NOW, new_id=lambda: new_id("prj")),
            Plans(database),
        )
    finally:
        await database.close()


async def test_users_start_free_and_keep_the_plan_they_are_given(world: World) -> None:
    ann = await world.database.user_by_id("usr_ann")
    pro = await world.database.user_by_email("pro@example.com")
    assert (ann and ann.plan, pro and pro.plan) == ("free", "pro")
    change = await world.plans.set_user_plan(ADMIN, "usr_ann", "enterprise")
    assert (change.previous_plan, change.plan, change.changed) == ("free", "enterprise", True)
    ann = await world.database.user_by_id("usr_ann")
    assert ann is not None
    assert ann.plan == "enterprise"
    brief = await world.database.user_brief("usr_ann")
    assert brief is not None
    assert brief[2] == "enterprise"
    views, _ = await world.projects.list(ANN, all_projects=False, page_size=0, page_token="")
    assert [(v.personal, v.project.plan) for v in views] == [(True, "enterprise")]


async def test_a_projects_plan_is_stored_and_reaches_its_tokens(world: World) -> None:
    project_id = (await world.projects.create(ANN, "Team")).project.project_id
    stored = await world.database.project(project_id)
    assert stored is not None
    assert stored.plan == "free"
    change = await world.plans.set_project_plan(ADMIN, project_id, "pro")
    assert (change.kind, change.previous_plan, change.plan) == ("project", "free", "pro")
    acting = await token_project(world.database, "usr_ann", False, project_id)
    assert acting is not None
    assert (acting.role, acting.plan) == ("owner", "pro")
    acting = await token_project(world.database, "usr_admin", True, project_id)
    assert acting is not None
    assert (acting.role, acting.plan) == ("owner", "pro")
    views, _ = await world.projects.list(ADMIN, all_projects=True, page_size=0, page_token="")
    assert [(v.project.project_id, v.project.plan) for v in views] == [(project_id, "pro")]
    # The user's own plan is untouched.
    ann = await world.database.user_by_id("usr_ann")
    assert ann is not None
    assert ann.plan == "free"


async def test_unknown_ids_are_not_found_and_non_admins_are_refused(world: World) -> None:
    for call in (
        world.plans.set_user_plan(ADMIN, "usr_nobody", "pro"),
        world.plans.set_project_plan(ADMIN, "prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W", "pro"),
        world.plans.set_project_plan(ADMIN, "usr_nobody", "pro"),
    ):
        with pytest.raises(NotFound):
            await call
    assert await world.database.set_user_plan("usr_nobody", "pro") is None
    with pytest.raises(PermissionDenied):
        await world.plans.set_user_plan(ANN, "usr_ann", "enterprise")
    ann = await world.database.user_by_id("usr_ann")
    assert ann is not None
    assert ann.plan == "free"


async def test_concurrent_changes_each_see_the_plan_the_other_left(world: World) -> None:
    changes = await asyncio.gather(
        world.plans.set_user_plan(ADMIN, "usr_ann", "pro"),
        world.plans.set_user_plan(ADMIN, "usr_ann", "enterprise"),
    )
    ann = await world.database.user_by_id("usr_ann")
    assert ann is not None
    first, second = sorted(changes, key=lambda change: change.previous_plan != "free")
    # One went first from free; the other started from what the first left.
    assert first.previous_plan == "free"
    assert second.previous_plan == first.plan
    assert ann.plan == second.plan
