"""SQLite for SQLAlchemy's aiosqlite dialect, run on the event loop's own thread.

aiosqlite runs every call (cursor, execute, fetchall, close, commit, rollback) in a
worker thread and wakes the loop for each answer; with SQLAlchemy's async adaptation on
top, a one-statement transaction costs about 0.73 ms of CPU, against 0.10 ms for the same
transaction through SQLAlchemy's synchronous API (loadtests/RESULTS.md). A job touches
SQLite about sixty times across jobs, storage and feedback, so those thread hops were a
large part of the mesh's CPU per job.

A SQLite statement on these small, local databases is a function call of microseconds,
so this module runs it where it is awaited. The one wait that could block the loop is
SQLite's busy handler (a writer waiting for another connection's write lock), so the
connection's own busy timeout is 0 and a statement refused with SQLITE_BUSY is retried
after an asyncio sleep, with backoff, until the engine's busy timeout has passed: other
coroutines, and the one holding the lock, keep running meanwhile.

The objects here mimic the small part of aiosqlite's API that SQLAlchemy's dialect uses
(`sqlalchemy.dialects.sqlite.aiosqlite`); `async_creator` hands them to it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

# First and largest pause between retries of a statement SQLite refused as busy.
_FIRST_BACKOFF_S = 0.001
_MAX_BACKOFF_S = 0.05


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(error)
    return "database is locked" in message or "database is busy" in message


class InlineCursor:
    """An aiosqlite-like cursor whose coroutines run the statement at once."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await self._connection.retry_busy(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        # A list, so that a retry after SQLITE_BUSY sends the same rows again.
        rows = list(parameters)
        await self._connection.retry_busy(self._cursor.executemany, sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if size is None:
            return self._cursor.fetchmany()
        return self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _CursorOpener:
    """What `connection.cursor()` returns: awaitable and an async context manager, as
    aiosqlite's is (SQLAlchemy enters it)."""

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection

    def _open(self) -> InlineCursor:
        return InlineCursor(self._connection, self._connection.raw.cursor())

    def __await__(self) -> Any:
        async def opened() -> InlineCursor:
            return self._open()

        return opened().__await__()

    async def __aenter__(self) -> InlineCursor:
        return self._open()

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect uses directly
    to set `isolation_level` on the driver's thread: here the function runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


class InlineConnection:
    """An aiosqlite-like connection that runs SQLite on the calling thread."""

    def __init__(self, raw: sqlite3.Connection, *, busy_timeout_s: float) -> None:
        self.raw = raw
        self.busy_timeout_s = busy_timeout_s
        self._tx = _RunNow()

    # aiosqlite's names that SQLAlchemy's dialect reads.
    @property
    def _conn(self) -> sqlite3.Connection:
        return self.raw

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self.raw

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.raw.isolation_level = value  # type: ignore[assignment]

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    async def retry_busy(self, call: Callable[..., Any], *args: Any) -> Any:
        """call(*args), again after a pause while SQLite answers busy or locked, for up to
        the busy timeout; then the last error is raised."""
        deadline = time.monotonic() + self.busy_timeout_s
        pause = _FIRST_BACKOFF_S
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_BACKOFF_S)

    def cursor(self) -> _CursorOpener:
        return _CursorOpener(self)

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        cursor = InlineCursor(self, self.raw.cursor())
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        await self.retry_busy(self.raw.commit)

    async def rollback(self) -> None:
        self.raw.rollback()

    async def close(self) -> None:
        self.raw.close()

    def stop(self) -> None:
        self.raw.close()

    async def create_function(
        self, name: str, num_params: int, func: Callable[..., Any], **kw: Any
    ) -> None:
        self.raw.create_function(name, num_params, func, **kw)


def connector(path: str, *, busy_timeout_s: float) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: opens `path` with autocommit off in
    the driver (the engine emits BEGIN itself) and SQLite's own busy wait off."""

    async def connect() -> InlineConnection:
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA busy_timeout=0")
        return InlineConnection(raw, busy_timeout_s=busy_timeout_s)

    return connect


def sqlite_path(database: str | None) -> str:
    """The file SQLAlchemy's URL names (":memory:" for none)."""
    return database or ":memory:"
