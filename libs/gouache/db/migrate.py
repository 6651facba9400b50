"""Alembic migrations per service: upgrade, downgrade and inspect one service's schema.

Each service owns its schema and its migrations (``services/<name>/migrations``: ``env.py``
and ``versions/``) and records its revision in its own version table,
``alembic_version_<name>``, so services may share one PostgreSQL database or use their own.
Migrations run on a connection of the service's async engine through ``run_sync``, in one
transaction: on PostgreSQL under a per-service advisory lock, so replicas that start
together migrate once; on SQLite under BEGIN IMMEDIATE with foreign keys off (batch
ALTERs copy and drop tables, which must not cascade) and a foreign-key check before commit.

A database made by the old ``create_all`` (the service's tables, no version table) is
adopted: stamped at the first revision, upgraded, and kept only if it then matches the
models exactly; otherwise the transaction is rolled back and ``SchemaMismatch`` says why.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gouache.db.engine import SQLITE_DRIVER, create_engine

VERSION_TABLE_PREFIX = "alembic_version_"
_ALEMBIC_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
MIGRATE_ACTIONS = ("upgrade", "downgrade", "current", "check")


class SchemaMismatch(RuntimeError):
    """The database holds this service's tables but they are not what its migrations make."""


@dataclass(frozen=True)
class Migrations:
    """Where one service's migrations live, the models they must produce, and its version table.

    ``service`` names the version table (``alembic_version_<service>``) and the PostgreSQL
    advisory lock; ``directory`` holds ``env.py`` and ``versions/``; ``metadata`` is the
    service's MetaData, the truth the migrations are checked against.
    """

    service: str
    directory: Path
    metadata: MetaData

    @property
    def version_table(self) -> str:
        return f"{VERSION_TABLE_PREFIX}{self.service}"

    @property
    def lock_key(self) -> int:
        """A stable signed 64-bit key for pg_advisory_lock, one per service."""
        digest = hashlib.sha256(f"gouache.migrate.{self.service}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self._config())

    def head(self) -> str:
        """The newest revision (the history is linear: one head)."""
        head = self.script().get_current_head()
        if head is None:
            raise SchemaMismatch(f"{self.directory} holds no revisions")
        return head

    def initial(self) -> str:
        """The first revision, the schema the old create_all made."""
        base = self.script().get_base()
        if base is None:
            raise SchemaMismatch(f"{self.directory} holds no revisions")
        return base

    def _config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        config.set_main_option("path_separator", "os")
        config.attributes["migrations"] = self
        if connection is not None:
            config.attributes["connection"] = connection
        return config


def run_env(migrations: Migrations) -> None:
    """The body of each service's ``env.py``: run the migrations on the given connection.

    Only online mode on the connection that ``upgrade``/``downgrade`` pass in (alembic's own
    CLI is not used: ``python -m services.<name> migrate`` is the command).
    """
    from alembic import context

    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            f"run {migrations.service}'s migrations with gouache.db.migrate or "
            f"`python -m services.{migrations.service} migrate`, not the alembic command"
        )
    context.configure(
        connection=connection,
        target_metadata=migrations.metadata,
        version_table=migrations.version_table,
        render_as_batch=True,
        compare_type=True,
        include_name=_own_names(migrations, only_model_tables=False),
    )
    with context.begin_transaction():
        context.run_migrations()


def _own_names(
    migrations: Migrations, *, only_model_tables: bool
) -> Callable[[str | None, str, Any], bool]:
    """Autogenerate filter: never the version tables; with only_model_tables, only ours.

    In a database shared by services the other services' tables are not ours to compare;
    in a database of its own, a table the models do not know is a difference to report.
    """
    own = set(migrations.metadata.tables)

    def include(name: str | None, kind: str, _parent: Any) -> bool:
        if kind != "table" or name is None:
            return True
        if name.startswith(VERSION_TABLE_PREFIX) or name == "alembic_version":
            return False
        return name in own or not only_model_tables

    return include


Target = AsyncEngine | str


async def upgrade(target: Target, migrations: Migrations, revision: str = "head") -> None:
    """Upgrade the service's schema to revision (default: the newest), adopting old databases."""

    def run(connection: Connection) -> None:
        adopted = _legacy_tables(connection, migrations)
        if not adopted:
            _refuse_unknown_revision(connection, migrations)
            command.upgrade(migrations._config(connection), revision)
            return
        if revision != "head":
            raise SchemaMismatch(
                _refusal(migrations, adopted, "adopting it needs an upgrade to head")
            )
        _adopt(connection, migrations, adopted)

    await _migrate(target, migrations, run)


async def downgrade(target: Target, migrations: Migrations, revision: str = "-1") -> None:
    """Downgrade the service's schema to revision: ``-1`` one step, ``base`` no tables."""

    def run(connection: Connection) -> None:
        _refuse_unknown_revision(connection, migrations)
        command.downgrade(migrations._config(connection), revision)

    await _migrate(target, migrations, run)


async def current(target: Target, migrations: Migrations) -> str | None:
    """The revision the database is at; None when the service's schema is not there."""
    async with _engine(target) as engine, engine.connect() as connection:
        return await connection.run_sync(lambda sync: _current(sync, migrations))


async def differences(
    target: Target, migrations: Migrations, *, only_model_tables: bool = False
) -> list[Any]:
    """What alembic's autogenerate would change to make the database match the models.

    Empty when migrations and models agree. Use only_model_tables on a database shared
    with other services, whose tables would otherwise show as tables to drop.
    """
    async with _engine(target) as engine, engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: _differences(sync, migrations, only_model_tables=only_model_tables)
        )


def _current(connection: Connection, migrations: Migrations) -> str | None:
    context = MigrationContext.configure(
        connection, opts={"version_table": migrations.version_table}
    )
    heads = context.get_current_heads()
    return heads[0] if heads else None


def _differences(
    connection: Connection, migrations: Migrations, *, only_model_tables: bool
) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": _own_names(migrations, only_model_tables=only_model_tables),
        },
    )
    return list(compare_metadata(context, migrations.metadata))


def _refuse_unknown_revision(connection: Connection, migrations: Migrations) -> None:
    """A database at a revision this code does not have was migrated by a newer release.

    Rolling back the code does not roll back the schema: that needs the newer release's
    own ``migrate downgrade`` first, so say so instead of alembic's "can't locate revision".
    """
    at = _current(connection, migrations)
    known = {script.revision for script in migrations.script().walk_revisions()}
    if at is None or at in known:
        return
    head = migrations.head()
    raise SchemaMismatch(
        f"the {migrations.service} database is at revision {at}, which this release does not "
        f"have (its newest is {head}): a newer release migrated it. Downgrade it with that "
        f"release's `python -m services.{migrations.service} migrate downgrade {head}` "
        f"before running this one."
    )


def _legacy_tables(connection: Connection, migrations: Migrations) -> list[str]:
    """The service's tables in a database without its version table (made by create_all)."""
    tables = set(inspect(connection).get_table_names())
    if migrations.version_table in tables:
        return []
    return sorted(tables & set(migrations.metadata.tables))


def _adopt(connection: Connection, migrations: Migrations, found: Sequence[str]) -> None:
    """Stamp a database made by create_all at the first revision, upgrade it, check it.

    Runs inside the migration transaction: the stamp, the upgrade and the check either
    all stay or, on SchemaMismatch, all roll back.
    """
    try:
        command.stamp(migrations._config(connection), migrations.initial())
        command.upgrade(migrations._config(connection), "head")
    except Exception as exc:
        raise SchemaMismatch(_refusal(migrations, found, f"upgrading it failed: {exc}")) from exc
    changes = _differences(connection, migrations, only_model_tables=True)
    if changes:
        listed = "; ".join(describe(change) for change in changes[:10])
        raise SchemaMismatch(_refusal(migrations, found, f"it differs from the models: {listed}"))


def describe(change: Any) -> str:
    """One line for one difference from compare_metadata, e.g. ``add_column auth_users.plan``."""
    if isinstance(change, list):
        return "; ".join(describe(part) for part in change)
    kind = change[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {change[1].name}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        return f"{kind} {change[1].name} on {change[1].table.name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {change[2]}.{change[3].name}"
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = change
        return f"{kind} {table}.{column}: {old!r} -> {new!r}"
    return str(change)


def _refusal(migrations: Migrations, found: Sequence[str], why: str) -> str:
    return (
        f"the {migrations.service} database has tables ({', '.join(found)}) but no "
        f"{migrations.version_table} table, and it cannot be adopted as revision "
        f"{migrations.initial()}: {why}. Nothing was changed. Move the data to a database "
        f"migrated with `python -m services.{migrations.service} migrate upgrade`, or fix the "
        f"tables and run it again."
    )


def _in_process_lock() -> asyncio.Lock:
    """One lock per event loop around alembic commands.

    Alembic's ``context`` and ``op`` are process-wide proxies, and run_sync switches
    greenlets on every database call, so two migrations in one process (tests, or the
    services of one process) would tear each other's proxies down mid-run.
    """
    loop = asyncio.get_running_loop()
    lock = _ALEMBIC_LOCKS.get(loop)
    if lock is None:
        lock = _ALEMBIC_LOCKS[loop] = asyncio.Lock()
    return lock


async def _migrate(
    target: Target, migrations: Migrations, run: Callable[[Connection], None]
) -> None:
    async with (
        _in_process_lock(),
        _engine(target) as engine,
        engine.connect() as connection,
    ):
        if connection.dialect.name == "postgresql":
            await _locked(connection, migrations, run)
        elif connection.dialect.name == "sqlite":
            await _without_foreign_keys(connection, run)
        else:
            raise ValueError(f"migrations support postgresql and sqlite, not {connection.dialect}")


async def _locked(
    connection: AsyncConnection, migrations: Migrations, run: Callable[[Connection], None]
) -> None:
    """Hold the service's session advisory lock for the whole migration transaction."""
    key = {"key": migrations.lock_key}
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
    await connection.commit()
    try:
        async with connection.begin():
            await connection.run_sync(run)
    finally:
        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
        await connection.commit()


async def _without_foreign_keys(
    connection: AsyncConnection, run: Callable[[Connection], None]
) -> None:
    """Migrate with SQLite's foreign keys off, checked before commit, then on again.

    Batch ALTERs rebuild a table (copy, drop, rename); with foreign keys on, dropping a
    parent table would cascade into its children. The pragma only takes effect outside a
    transaction, so it is set on the driver connection before BEGIN.
    """
    await connection.run_sync(lambda sync: _pragma(sync, "foreign_keys=OFF"))
    try:
        async with connection.begin():
            await connection.run_sync(run)
            broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if broken:
                raise SchemaMismatch(
                    f"the migration left rows whose foreign keys point nowhere: {broken[:5]}"
                )
    finally:
        await connection.run_sync(lambda sync: _pragma(sync, "foreign_keys=ON"))


def _pragma(connection: Connection, pragma: str) -> None:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


@asynccontextmanager
async def _engine(target: Target) -> AsyncIterator[AsyncEngine]:
    """The given engine, or a short-lived one for a URL (disposed afterwards)."""
    if isinstance(target, AsyncEngine):
        yield target
        return
    url = make_url(target)
    if url.drivername == SQLITE_DRIVER and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(target)
    try:
        yield engine
    finally:
        await engine.dispose()


def add_migrate_command(commands: Any) -> None:
    """Add ``migrate [upgrade|downgrade|current|check] [REV]`` to a service's subcommands."""
    migrate = commands.add_parser(
        "migrate",
        help="upgrade, downgrade or show this service's schema (run before serving, e.g. a Job)",
    )
    migrate.add_argument(
        "action",
        nargs="?",
        default="upgrade",
        choices=MIGRATE_ACTIONS,
        help="upgrade (default, to head), downgrade (default: one step), current (print the "
        "revision), check (exit 1 when the database differs from the models)",
    )
    migrate.add_argument(
        "revision",
        nargs="?",
        help="a revision id; upgrade: head (default) or +N; downgrade: -1 (default), base",
    )


def run_migrate_command(args: argparse.Namespace, url: str, migrations: Migrations) -> int:
    """Run a parsed ``migrate`` command against url; print the result; return an exit status."""
    action: Literal["upgrade", "downgrade", "current", "check"] = args.action
    try:
        return asyncio.run(_run_migrate(action, args.revision, url, migrations))
    except SchemaMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _run_migrate(action: str, revision: str | None, url: str, migrations: Migrations) -> int:
    service = migrations.service
    if action == "current":
        print(await current(url, migrations) or "none")
        return 0
    if action == "check":
        changes = await differences(url, migrations, only_model_tables=True)
        for change in changes:
            print(describe(change))
        at = await current(url, migrations)
        if changes or at != migrations.head():
            print(
                f"{service}: database at {at or 'no revision'}, head {migrations.head()}, "
                f"{len(changes)} differences from the models",
                file=sys.stderr,
            )
            return 1
        print(f"{service}: at head {at}, matches the models")
        return 0
    if action == "upgrade":
        await upgrade(url, migrations, revision or "head")
    else:
        await downgrade(url, migrations, revision or "-1")
    print(f"{service}: {action} done, now at {await current(url, migrations) or 'base'}")
    return 0
