"""Each service's Alembic migrations on SQLite and PostgreSQL: up, down, agreement, adoption."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db import (
    Migrations,
    SchemaMismatch,
    ServiceDatabase,
    create_engine,
    utc_now,
)
from gouache.db.migrate import current, differences, downgrade, upgrade
from tests.fixtures.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[3]
SERVICES_DIR = REPO / "services"
COMMAND_TIMEOUT_S = 60
# Services known to own tables: discovery below must find at least these.
EXPECTED = {"auth", "storage", "jobs", "feedback"}


def _service_migrations() -> dict[str, Migrations]:
    """Every ServiceDatabase a service's store declares (services/*/store.py, or a store
    package's modules), so no service is forgotten."""
    found: dict[str, Migrations] = {}
    modules = [f"services.{path.parent.name}.store" for path in SERVICES_DIR.glob("*/store.py")]
    modules += [
        f"services.{path.parent.parent.name}.store.{path.stem}"
        for path in SERVICES_DIR.glob("*/store/*.py")
    ]
    for name in sorted(modules):
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, ServiceDatabase)
                and value.__module__ == module.__name__
            ):
                found[value.migrations.service] = value.migrations
    return found


MIGRATIONS = _service_migrations()
SERVICES = sorted(MIGRATIONS)


def test_every_service_with_tables_has_migrations() -> None:
    assert set(SERVICES) >= EXPECTED
    for name, migrations in MIGRATIONS.items():
        assert migrations.directory == SERVICES_DIR / name / "migrations"
        assert (migrations.directory / "env.py").is_file()
        script = migrations.script()
        assert len(script.get_heads()) == 1, f"{name}: the history must be linear"
        assert migrations.version_table == f"alembic_version_{name}"


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


def _previous(migrations: Migrations, revision: str) -> str | None:
    down = migrations.script().get_revision(revision).down_revision
    assert down is None or isinstance(down, str), "no merge revisions"
    return down


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_from_empty_then_one_step_down_and_up_again(
    service: str, engine: AsyncEngine
) -> None:
    migrations = MIGRATIONS[service]
    own = set(migrations.metadata.tables)
    head = migrations.head()
    assert await current(engine, migrations) is None

    await upgrade(engine, migrations)
    assert await current(engine, migrations) == head
    assert await _tables(engine) == own | {migrations.version_table}

    await downgrade(engine, migrations, "-1")
    previous = _previous(migrations, head)
    assert await current(engine, migrations) == previous
    if previous is None:
        assert await _tables(engine) & own == set()

    await upgrade(engine, migrations)
    assert await current(engine, migrations) == head
    assert await differences(engine, migrations) == []

    await downgrade(engine, migrations, "base")
    assert await current(engine, migrations) is None
    assert await _tables(engine) == {migrations.version_table}


@pytest.mark.parametrize("service", SERVICES)
async def test_models_and_migrations_agree(service: str, engine: AsyncEngine) -> None:
    """compare_metadata on a database migrated from empty finds nothing to change."""
    migrations = MIGRATIONS[service]
    await upgrade(engine, migrations)
    assert await differences(engine, migrations) == []


async def test_services_share_one_database_with_their_own_version_tables(
    engine: AsyncEngine,
) -> None:
    for migrations in MIGRATIONS.values():
        await upgrade(engine, migrations)
    tables = await _tables(engine)
    for migrations in MIGRATIONS.values():
        assert migrations.version_table in tables
        assert await current(engine, migrations) == migrations.head()
        assert await differences(engine, migrations, only_model_tables=True) == []

    feedback = MIGRATIONS["feedback"]
    await downgrade(engine, feedback, "base")
    assert await current(engine, feedback) is None
    assert await _tables(engine) & set(feedback.metadata.tables) == set()
    for name, migrations in MIGRATIONS.items():
        if name != "feedback":
            assert await current(engine, migrations) == migrations.head()
            assert set(migrations.metadata.tables) <= await _tables(engine)


async def _migrate_command(service: str, url: str, *args: str) -> tuple[int, str, str]:
    """Run `python -m services.<service> migrate ARGS` against url, as a Job would."""
    env = {**os.environ, f"GOUACHE_{service.upper()}_DATABASE_URL": url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}",
        "migrate",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    """Three processes upgrade one empty database at once, as replicas' init containers do."""
    migrations = MIGRATIONS["jobs"]
    results = await asyncio.gather(*(_migrate_command("jobs", db_url, "upgrade") for _ in range(3)))
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert out.strip() == f"jobs: upgrade done, now at {migrations.head()}"
    assert await current(db_url, migrations) == migrations.head()
    assert await differences(db_url, migrations) == []


@pytest.mark.postgres
async def test_an_upgrade_waits_for_the_service_lock(postgres_server: PostgresServer) -> None:
    """On PostgreSQL a migration starts only once no other replica holds the lock."""
    migrations = MIGRATIONS["storage"]
    name = f"test_{uuid.uuid4().hex[:16]}"
    await postgres_server.create_database(name)
    holder = await asyncpg.connect(
        host=postgres_server.host,
        port=postgres_server.port,
        user=postgres_server.user,
        database=name,
    )
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrations.lock_key)
        url = postgres_server.url(name)
        task = asyncio.create_task(upgrade(url, migrations))
        deadline = asyncio.get_running_loop().time() + 10
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while await holder.fetchval(query) == 0:
            assert not task.done(), task.exception()
            assert asyncio.get_running_loop().time() < deadline, "the upgrade never asked"
            await asyncio.sleep(0.02)
        assert not task.done()
        assert await current(url, migrations) is None

        await holder.execute("SELECT pg_advisory_unlock($1)", migrations.lock_key)
        await asyncio.wait_for(task, 30)
        assert await current(url, migrations) == migrations.head()
    finally:
        await holder.close()
        await postgres_server.drop_database(name)


async def test_the_migrate_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'feedback.db'}"
    head = MIGRATIONS["feedback"].head()

    assert (await _migrate_command("feedback", url, "current"))[:2] == (0, "none\n")
    code, out, err = await _migrate_command("feedback", url, "check")
    assert code == 1
    assert "add_table feedback_ratings" in out
    assert f"database at no revision, head {head}" in err

    assert (await _migrate_command("feedback", url))[:2] == (
        0,
        f"feedback: upgrade done, now at {head}\n",
    )
    assert (await _migrate_command("feedback", url, "current"))[:2] == (0, f"{head}\n")
    assert (await _migrate_command("feedback", url, "check"))[:2] == (
        0,
        f"feedback: at head {head}, matches the models\n",
    )
    assert (await _migrate_command("feedback", url, "downgrade", "base"))[:2] == (
        0,
        "feedback: downgrade done, now at base\n",
    )


async def test_a_database_from_a_newer_release_is_refused(engine: AsyncEngine) -> None:
    """After a code rollback the schema is ahead: say how to downgrade, change nothing."""
    migrations = MIGRATIONS["storage"]
    await upgrade(engine, migrations)
    async with engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE {migrations.version_table} SET version_num = '9999'")
        )

    for action in (upgrade(engine, migrations), downgrade(engine, migrations, "-1")):
        with pytest.raises(SchemaMismatch) as refused:
            await action
        assert "revision 9999, which this release does not have" in str(refused.value)
        assert f"migrate downgrade {migrations.head()}" in str(refused.value)
    assert await current(engine, migrations) == "9999"
    assert set(migrations.metadata.tables) <= await _tables(engine)


async def _create_all_database(engine: AsyncEngine, migrations: Migrations) -> None:
    """A database as the old create_all made it: the first revision's tables, no version table.

    The first revision of every service is, by definition, the schema create_all made
    before migrations existed (later revisions change the models, not that past).
    """
    await upgrade(engine, migrations, migrations.initial())
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP TABLE "{migrations.version_table}"'))
    assert await current(engine, migrations) is None


def _store_class(service: str) -> type[ServiceDatabase]:
    """The service's ServiceDatabase, as its store module (or package) exports it."""
    module = importlib.import_module(f"services.{service}.store")
    return next(
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceDatabase)
        and value.__module__.startswith(module.__name__)
    )


@pytest.mark.parametrize("service", SERVICES)
async def test_a_create_all_database_is_stamped_and_upgraded(
    service: str, engine: AsyncEngine
) -> None:
    """State dirs made before migrations keep working: the store adopts their tables."""
    migrations = MIGRATIONS[service]
    await _create_all_database(engine, migrations)

    await _store_class(service)(engine).create_schema()

    assert await current(engine, migrations) == migrations.head()
    assert await differences(engine, migrations) == []
    await _store_class(service)(engine).create_schema()
    assert await current(engine, migrations) == migrations.head()


async def test_adopting_keeps_the_rows(engine: AsyncEngine) -> None:
    from services.auth.store import AuthDatabase, users

    await _create_all_database(engine, AuthDatabase.migrations)
    async with engine.begin() as connection:
        await connection.execute(
            insert(users).values(
                user_id="usr_1", email="a@example.com", name="A", role="admin", created_at=utc_now()
            )
        )
    database = AuthDatabase(engine)
    await database.create_schema()
    found = await database.user_by_email("a@example.com")
    assert found is not None
    assert found.user_id == "usr_1"


@pytest.mark.parametrize("service", SERVICES)
async def test_a_create_all_database_that_differs_is_refused_and_left_alone(
    service: str, engine: AsyncEngine
) -> None:
    migrations = MIGRATIONS[service]
    await _create_all_database(engine, migrations)
    before = await _tables(engine)
    # A table nothing refers to (last in dependency order), so it can go.
    missing = next(
        table.name for table in reversed(migrations.metadata.sorted_tables) if table.name in before
    )
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP TABLE "{missing}"'))
    before.remove(missing)

    with pytest.raises(SchemaMismatch) as refused:
        await upgrade(engine, migrations)

    message = str(refused.value)
    assert f"no {migrations.version_table} table" in message
    assert missing in message
    assert f"python -m services.{service} migrate" in message
    assert await _tables(engine) == before
    assert await current(engine, migrations) is None


PARENT_CHILD = '''"""Parent and child, the child's rows deleted with their parent."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "parent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(20), nullable=True),
    )
    op.create_table(
        "child",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "parent_id", sa.Integer(), sa.ForeignKey("parent.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )


def downgrade():
    op.drop_table("child")
    op.drop_table("parent")
'''

PARENT_NOT_NULL = '''"""parent.name becomes NOT NULL: on SQLite a batch ALTER that rebuilds the table."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("parent") as batch:
        batch.alter_column("name", existing_type=sa.String(20), nullable=False)


def downgrade():
    with op.batch_alter_table("parent") as batch:
        batch.alter_column("name", existing_type=sa.String(20), nullable=True)
'''

GENERIC_ENV = """from alembic import context

from gouache.db.migrate import run_env

run_env(context.config.attributes["migrations"])
"""


async def test_a_batch_rebuild_of_a_parent_table_keeps_its_children(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """SQLite rebuilds the parent (copy, drop, rename): foreign keys must not cascade."""
    from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table

    metadata = MetaData()
    parent = Table(
        "parent",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20), nullable=False),
    )
    child = Table(
        "child",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", ForeignKey("parent.id", ondelete="CASCADE"), nullable=False),
    )
    directory = tmp_path / "migrations"
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(GENERIC_ENV)
    (directory / "versions" / "0001_parent_child.py").write_text(PARENT_CHILD)
    (directory / "versions" / "0002_parent_name_not_null.py").write_text(PARENT_NOT_NULL)
    migrations = Migrations("family", directory, metadata)

    await upgrade(engine, migrations, "0001")
    async with engine.begin() as connection:
        await connection.execute(insert(parent).values(id=1, name="p"))
        await connection.execute(insert(child).values(id=10, parent_id=1))

    await upgrade(engine, migrations)

    assert await current(engine, migrations) == "0002"
    assert await differences(engine, migrations) == []
    async with engine.connect() as connection:
        assert (await connection.execute(select(child.c.parent_id))).scalars().all() == [1]
        if connection.dialect.name == "sqlite":
            pragma = await connection.exec_driver_sql("PRAGMA foreign_keys")
            assert pragma.scalar() == 1, "foreign keys are on again after the migration"


async def test_a_url_is_migrated_through_its_own_engine(tmp_path: Path) -> None:
    """The CLI passes a URL: a SQLite file in a folder that does not exist yet."""
    migrations = MIGRATIONS["feedback"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'feedback.db'}"
    await upgrade(url, migrations)
    assert await current(url, migrations) == migrations.head()
    engine = create_engine(url)
    try:
        assert set(migrations.metadata.tables) <= await _tables(engine)
    finally:
        await engine.dispose()
