"""A backing service that is down answers UNAVAILABLE with a retry hint, not INTERNAL."""

from __future__ import annotations

import sqlite3

import asyncpg
import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from gouache.db import create_engine  # also registers the database's transient errors
from gouache.runtime.errors import TRANSIENT_RETRY_AFTER_S, transient_cause


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig)


def test_a_database_shutting_down_is_unavailable() -> None:
    error = transient_cause(_wrapped(asyncpg.AdminShutdownError("terminating connection")))

    assert error is not None
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.message == (
        "the database is unavailable right now (AdminShutdownError); retry in a few seconds"
    )
    assert error.reason == "BACKEND_UNAVAILABLE"
    assert error.retry_after_s == TRANSIENT_RETRY_AFTER_S


def test_the_cause_chain_is_searched() -> None:
    try:
        try:
            raise _wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed"))
        except OperationalError as exc:
            raise RuntimeError("while saving the job") from exc
    except RuntimeError as outer:
        error = transient_cause(outer)

    assert error is not None
    assert "ConnectionDoesNotExistError" in error.message


def test_a_busy_sqlite_file_is_unavailable_but_a_missing_table_is_a_bug() -> None:
    assert transient_cause(_wrapped(sqlite3.OperationalError("database is locked"))) is not None
    assert transient_cause(_wrapped(sqlite3.OperationalError("no such table: jobs"))) is None
    assert transient_cause(_wrapped(sqlite3.OperationalError('near "SELEC": syntax error'))) is None


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        KeyError("job"),
    ],
)
def test_other_errors_stay_internal(exc: BaseException) -> None:
    assert transient_cause(exc) is None


def test_an_error_raised_while_handling_one_is_not_transient() -> None:
    # Implicit context (raised inside an except block) is not a cause.
    def handle() -> None:
        try:
            raise _wrapped(sqlite3.OperationalError("database is locked"))
        except OperationalError:
            raise KeyError("a bug in the handler")  # noqa: B904

    with pytest.raises(KeyError) as caught:
        handle()

    assert caught.value.__context__ is not None
    assert transient_cause(caught.value) is None


async def test_a_database_that_is_down_is_unavailable() -> None:
    # SQLAlchemy's asyncpg dialect raises the bare ConnectionRefusedError on connect.
    engine = create_engine("postgresql+asyncpg://gouache@127.0.0.1:1/gouache")
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011 (whatever the driver raises)
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    error = transient_cause(caught.value)
    assert error is not None
    assert error.code == grpc.StatusCode.UNAVAILABLE
