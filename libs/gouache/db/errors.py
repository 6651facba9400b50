"""Recognising database errors that callers handle, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError

from gouache.runtime.errors import register_transient

_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE_CODES = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield exc, the driver error SQLAlchemy wrapped, and their causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None, current.__cause__])


def _is_driver_unique_violation(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if sqlstate == _PG_UNIQUE_VIOLATION:
        return True
    return getattr(exc, "sqlite_errorcode", None) in _SQLITE_UNIQUE_CODES


def is_unique_violation(exc: BaseException) -> bool:
    """Say whether exc is an IntegrityError caused by a unique or primary-key violation.

    Lets idempotent writes treat "someone inserted this key first" as success while other
    integrity errors (NOT NULL, foreign keys, checks) still fail. Works for asyncpg
    (SQLSTATE 23505) and sqlite3/aiosqlite (extended result codes).
    """
    if not isinstance(exc, IntegrityError):
        return False
    return any(_is_driver_unique_violation(cause) for cause in _causes(exc))


# A database that is down, restarting or refusing connections answers UNAVAILABLE to callers
# (they retry), not INTERNAL. Only connection trouble counts: SQLite also raises
# OperationalError for "no such table" or a syntax error, which are bugs.
_PG_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,  # refused, lost, or gone mid-call
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
_SQLITE_BUSY = ("database is locked", "database table is locked", "unable to open database file")


def is_database_unavailable(exc: BaseException) -> bool:
    """Say whether exc (one link of a cause chain) means the database is down or busy."""
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)) and exc.connection_invalidated:
        return True
    if isinstance(exc, _PG_CONNECTION_ERRORS):
        return True
    return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(_SQLITE_BUSY)


register_transient(is_database_unavailable, "the database")
