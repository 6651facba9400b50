"""Auth migration 0004 (plans) keeps the users and projects from before, each on the free
plan (what their tokens carried without a plan claim), on SQLite and PostgreSQL; down and
up again works."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db.migrate import current, differences, downgrade, upgrade
from services.auth.store import AuthDatabase, projects, users

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_users_and_projects_from_before_are_on_the_free_plan(engine: AsyncEngine) -> None:
    migrations = AuthDatabase.migrations
    await upgrade(engine, migrations, "0003")
    async with engine.begin() as connection:
        await connection.execute(
            insert(users).values(
                user_id="usr_1", email="a@example.com", name="", role="user", created_at=AT
            )
        )
        await connection.execute(
            insert(projects).values(
                project_id="prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W",
                name="Team",
                created_by="usr_1",
                created_at=AT,
            )
        )

    await upgrade(engine, migrations)

    assert await current(engine, migrations) == migrations.head()
    assert await differences(engine, migrations) == []
    async with engine.connect() as connection:
        user_plans = (await connection.execute(select(users.c.user_id, users.c.plan))).all()
        project_plans = (
            await connection.execute(select(projects.c.project_id, projects.c.plan))
        ).all()
    assert [tuple(row) for row in user_plans] == [("usr_1", "free")]
    assert [tuple(row) for row in project_plans] == [("prj_01JDX0ZQ3N4M5P6Q7R8S9T0V1W", "free")]
    database = AuthDatabase(engine)
    assert await database.set_user_plan("usr_1", "pro") == "free"

    await downgrade(engine, migrations, "0003")
    await upgrade(engine, migrations)
    user = await database.user_by_id("usr_1")
    assert user is not None
    assert user.plan == "free"
