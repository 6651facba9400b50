"""Async engines, sessions and schema creation for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from gouache.db import inline_sqlite

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
SQLITE_BUSY_TIMEOUT_MS = 5_000
_WAL_RETRY_S = 0.02
# Any constant works; it only has to be the same for every replica of every service.
_SCHEMA_LOCK_KEY = 0x6A0AC4E
READ_ONLY = "gouache_read_only"
# "inline" (the default): SQLite on the event loop (gouache.db.inline_sqlite), a quarter
# less CPU per job in the mesh (loadtests/RESULTS.md, issue 10); "thread": aiosqlite's
# worker thread, each cursor call a hop to it and back.
SQLITE_MODE_ENV = "GOUACHE_SQLITE_MODE"
"""Execution option of read-only engines (`read_only`): on SQLite their transactions
begin DEFERRED, a WAL snapshot that neither waits for nor blocks the writer."""


def create_engine(
    url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10
) -> AsyncEngine:
    """Create an async engine for ``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``.

    SQLite connections get WAL (readers do not block the writer), foreign keys, a busy
    timeout, and real transactions (see ``_configure_sqlite``). PostgreSQL connections are
    pooled (``pool_size`` + ``max_overflow``), checked before use and recycled, so a
    restarted server or a proxy that drops idle connections costs no failed request.
    """
    parsed = make_url(url)
    driver = parsed.drivername
    if driver == SQLITE_DRIVER:
        mode = os.environ.get(SQLITE_MODE_ENV, "inline")
        if mode not in ("inline", "thread"):
            raise ValueError(
                f"{SQLITE_MODE_ENV}={mode!r} is not a SQLite mode: use inline (the default, "
                "SQLite on the event loop) or thread (aiosqlite's worker thread)"
            )
        if mode == "thread":
            engine = create_async_engine(url, echo=echo)
            _configure_sqlite(engine, inline=False)
        else:
            creator = inline_sqlite.connector(
                inline_sqlite.sqlite_path(parsed.database),
                busy_timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
            engine = create_async_engine(url, echo=echo, async_creator=creator)
            _configure_sqlite(engine, inline=True)
        return engine
    if driver == POSTGRES_DRIVER:
        return create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=30,
        )
    raise ValueError(
        f"unsupported database driver {driver!r}: use {SQLITE_DRIVER}:///path.db "
        f"or {POSTGRES_DRIVER}://user:password@host:port/database"
    )


def _configure_sqlite(engine: AsyncEngine, *, inline: bool) -> None:
    """Set pragmas on each new connection and make every transaction BEGIN IMMEDIATE.

    Python's sqlite3 driver by default starts a transaction only at the first INSERT or
    UPDATE, so SELECTs before it see no snapshot and savepoints misbehave. We switch that
    off and emit BEGIN ourselves. IMMEDIATE takes the write lock up front: a deferred
    transaction that reads, then writes fails at once with "database is locked" when
    another connection committed in between, whereas waiting for the lock honours the
    busy timeout. SQLite serialises writers anyway; the cost is that read-only sessions
    queue too, so keep sessions short and never await a network call inside one.
    """

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not inline:
                # Inline connections wait for locks with asyncio sleeps instead.
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, retrying while another connection is switching it too.

    Connections that open a new file together (replicas, a command beside a service)
    race to convert it, and SQLite may answer one "database is locked" at once, without
    calling its busy handler (seen with four processes migrating one new file), so the
    wait is ours, bounded by the same busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(_WAL_RETRY_S)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session maker services use; objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, for sessions that only read.

    Every other SQLite transaction takes the write lock up front (BEGIN IMMEDIATE, see
    _configure_sqlite), so a GetJob waited behind each event being applied, each job being
    created; under load the reads queued on the lock (loadtests/RESULTS.md). A read-only
    session begins DEFERRED instead: it reads a consistent WAL snapshot without waiting.
    It must not write (a write would need the lock it did not take). PostgreSQL ignores
    the option: its reads never wait for writers.
    """
    return engine.execution_options(**{READ_ONLY: True})


async def create_all(engine: AsyncEngine, metadata: MetaData) -> None:
    """Create the tables and indexes of metadata that do not exist yet (safe to repeat).

    On PostgreSQL a transaction-scoped advisory lock serialises replicas that start at the
    same moment, which would otherwise race on CREATE TABLE. SQLite needs nothing more:
    the DDL runs in one BEGIN IMMEDIATE transaction.
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
        await connection.run_sync(metadata.create_all)
