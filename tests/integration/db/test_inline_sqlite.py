"""SQLite run on the event loop (gouache.db.inline_sqlite): a lock is waited for without
blocking the loop, and given up after the busy timeout with SQLite's own error."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db import create_all, create_engine, is_unique_violation, session_factory
from gouache.db import engine as engine_module
from gouache.db.inline_sqlite import InlineConnection

metadata = MetaData()
rows = Table("rows", metadata, Column("id", String, primary_key=True), Column("n", Integer))


@pytest.fixture(autouse=True)
def inline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine_module.SQLITE_MODE_ENV, "inline")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    await create_all(engine, metadata)
    yield engine  # type: ignore[misc]
    await engine.dispose()


async def test_connections_are_inline_when_asked(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, InlineConnection)


async def test_writers_in_one_process_take_turns_without_blocking_the_loop(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    ticks: list[float] = []
    holding = asyncio.Event()

    async def ticker() -> None:
        for _ in range(40):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def first() -> None:
        async with sessions.begin() as session:
            await session.execute(insert(rows).values(id="a", n=1))
            holding.set()
            # Holds the write lock (BEGIN IMMEDIATE) across a real suspension.
            await asyncio.sleep(0.3)

    async def second() -> float:
        await holding.wait()
        started = time.monotonic()
        async with sessions.begin() as session:
            await session.execute(insert(rows).values(id="b", n=2))
        return time.monotonic() - started

    ticking = asyncio.create_task(ticker())
    _, waited = await asyncio.gather(first(), second())
    await ticking
    async with sessions() as session:
        assert set((await session.execute(select(rows.c.id))).scalars()) == {"a", "b"}
    # The second writer waited for the first one's commit...
    assert waited >= 0.2
    # ...while the loop kept running: no gap between ticks near the lock's 0.3 s.
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.15


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        other.execute("COMMIT")
    finally:
        other.close()


async def test_a_lock_held_elsewhere_is_waited_for_then_taken(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    locked = threading.Event()
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "inline.db", 0.4, locked), daemon=True
    )
    holder.start()
    await asyncio.to_thread(locked.wait, 5)
    started = time.monotonic()
    async with session_factory(engine).begin() as session:
        await session.execute(insert(rows).values(id="c", n=3))
    assert time.monotonic() - started >= 0.3
    await asyncio.to_thread(holder.join, 5)


async def test_a_lock_held_past_the_busy_timeout_fails_with_sqlites_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'busy.db'}")
    await create_all(engine, metadata)
    locked = threading.Event()
    holder = threading.Thread(
        target=_hold_write_lock, args=(tmp_path / "busy.db", 1.5, locked), daemon=True
    )
    holder.start()
    try:
        await asyncio.to_thread(locked.wait, 5)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            async with session_factory(engine).begin() as session:
                await session.execute(insert(rows).values(id="d", n=4))
        assert 0.2 <= time.monotonic() - started < 1.2
    finally:
        await asyncio.to_thread(holder.join, 5)
        await engine.dispose()


async def test_constraint_errors_keep_their_type(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(insert(rows).values(id="e", n=5))
    with pytest.raises(IntegrityError) as caught:
        async with sessions.begin() as session:
            await session.execute(insert(rows).values(id="e", n=6))
    assert is_unique_violation(caught.value)
    # The failed transaction was rolled back; the connection is usable again.
    async with sessions.begin() as session:
        await session.execute(insert(rows).values(id="f", n=7))
        assert len((await session.execute(select(rows))).all()) == 2


async def test_many_rows_and_fetches(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(insert(rows), [{"id": f"r{i:03}", "n": i} for i in range(250)])
    async with sessions() as session:
        result = await session.stream(select(rows.c.n).order_by(rows.c.n))
        streamed = [n async for n in result.scalars()]
    assert streamed == list(range(250))
