"""gouache.db on SQLite and PostgreSQL: schema, time zones, JSON, errors, transactions."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db import (
    PortableJSON,
    UtcDateTime,
    create_all,
    create_engine,
    is_unique_violation,
    new_metadata,
    read_only,
    session_factory,
)
from gouache.db.engine import SQLITE_MODE_ENV


def _schema() -> tuple[MetaData, Table, Table]:
    metadata = new_metadata()
    owners = Table(
        "owners",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("email", String(200), nullable=False, unique=True),
    )
    items = Table(
        "items",
        metadata,
        Column("id", String(40), primary_key=True),
        Column("owner_id", ForeignKey("owners.id"), nullable=False),
        Column("at", UtcDateTime, nullable=True),
        Column("doc", PortableJSON, nullable=True),
        Column("counter", Integer, nullable=False, default=0),
    )
    return metadata, owners, items


@pytest.fixture
async def schema(engine: AsyncEngine) -> tuple[Table, Table]:
    metadata, owners, items = _schema()
    await create_all(engine, metadata)
    async with engine.begin() as connection:
        await connection.execute(insert(owners).values(id="own_1", email="a@example.com"))
    return owners, items


async def test_create_all_is_idempotent_and_safe_to_race(engine: AsyncEngine) -> None:
    metadata, _, _ = _schema()
    await asyncio.gather(*(create_all(engine, metadata) for _ in range(3)))
    await create_all(engine, metadata)

    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        uniques = await connection.run_sync(
            lambda sync: inspect(sync).get_unique_constraints("owners")
        )
    assert {"owners", "items"} <= set(names)
    assert [unique["name"] for unique in uniques] == ["uq_owners_email"]


async def test_aware_datetimes_round_trip_as_utc(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    _, items = schema
    plus_five = timezone(timedelta(hours=5))
    written = {
        "itm_a": datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=plus_five),
        "itm_b": datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
    }
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        for item_id, at in written.items():
            await session.execute(insert(items).values(id=item_id, owner_id="own_1", at=at))

    async with sessions() as session:
        rows = (await session.execute(select(items.c.id, items.c.at).order_by(items.c.at))).all()
        later = await session.scalars(
            select(items.c.id).where(items.c.at > datetime(2024, 3, 1, 7, 45, tzinfo=UTC))
        )
        later_ids = later.all()

    assert [row.id for row in rows] == ["itm_a", "itm_b"]  # 07:30Z sorts before 08:00Z
    for row in rows:
        assert row.at.utcoffset() == timedelta(0)
        assert row.at == written[row.id]
    assert later_ids == ["itm_b"]


async def test_naive_datetimes_are_refused(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    _, items = schema
    async with session_factory(engine)() as session:
        with pytest.raises(StatementError, match="aware datetime"):
            await session.execute(
                insert(items).values(id="itm_n", owner_id="own_1", at=datetime(2024, 1, 1))
            )


async def test_json_documents_round_trip(engine: AsyncEngine, schema: tuple[Table, Table]) -> None:
    _, items = schema
    document = {"alpha": 0.5, "styles": ["img_1", "img_2"], "nested": {"seed": 7, "ok": True}}
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(insert(items).values(id="itm_j", owner_id="own_1", doc=document))

    async with sessions() as session:
        assert await session.scalar(select(items.c.doc)) == document


async def test_unique_violations_are_told_apart_from_other_integrity_errors(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    owners, items = schema
    sessions = session_factory(engine)
    attempts = {
        "duplicate primary key": insert(owners).values(id="own_1", email="b@example.com"),
        "duplicate unique column": insert(owners).values(id="own_2", email="a@example.com"),
        "missing foreign key": insert(items).values(id="itm_x", owner_id="own_nobody"),
        "null in not-null column": insert(owners).values(id="own_3", email=None),
    }
    outcomes = {}
    for label, statement in attempts.items():
        async with sessions() as session:
            with pytest.raises(IntegrityError) as caught:
                await session.execute(statement)
            outcomes[label] = is_unique_violation(caught.value)

    assert outcomes == {
        "duplicate primary key": True,
        "duplicate unique column": True,
        "missing foreign key": False,  # also proves SQLite enforces foreign keys
        "null in not-null column": False,
    }
    assert not is_unique_violation(ValueError("unique"))


async def test_savepoint_rollback_keeps_the_outer_transaction(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    owners, _ = schema
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(insert(owners).values(id="own_kept", email="kept@example.com"))
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                await session.execute(insert(owners).values(id="own_1", email="x@example.com"))

    async with sessions() as session:
        emails = await session.scalars(select(owners.c.email).order_by(owners.c.email))
        assert emails.all() == ["a@example.com", "kept@example.com"]


async def test_concurrent_read_modify_write_loses_no_update(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    _, items = schema
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        await session.execute(insert(items).values(id="itm_c", owner_id="own_1", counter=0))

    async def increment() -> None:
        async with sessions.begin() as session:
            current = await session.scalar(
                select(items.c.counter).where(items.c.id == "itm_c").with_for_update()
            )
            assert current is not None
            await session.execute(
                update(items).where(items.c.id == "itm_c").values(counter=current + 1)
            )

    await asyncio.gather(*(increment() for _ in range(10)))

    async with sessions() as session:
        assert await session.scalar(select(func.max(items.c.counter))) == 10


@pytest.mark.parametrize(("mode", "busy_timeout"), [("inline", 0), ("thread", 5000)])
async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, busy_timeout: int
) -> None:
    # Inline connections wait for locks with asyncio sleeps, not in SQLite.
    monkeypatch.setenv(SQLITE_MODE_ENV, mode)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: await connection.scalar(text(f"PRAGMA {name}"))
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()

    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": busy_timeout}


def test_an_unknown_sqlite_mode_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SQLITE_MODE_ENV, "threads")
    with pytest.raises(ValueError, match="'threads' is not a SQLite mode: use inline"):
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")


async def test_read_only_sessions_read_a_snapshot_while_a_writer_holds_the_lock(
    engine: AsyncEngine, schema: tuple[Table, Table]
) -> None:
    owners, _ = schema
    writes = session_factory(engine)
    reads = session_factory(read_only(engine))
    async with writes.begin() as writer:
        # The writer holds SQLite's write lock (BEGIN IMMEDIATE) with an uncommitted row.
        await writer.execute(insert(owners).values(id="own_2", email="b@example.com"))
        started = time.monotonic()
        async with reads() as reader:
            emails = set((await reader.execute(select(owners.c.email))).scalars())
        waited = time.monotonic() - started
        # The committed state, at once: not the writer's row, and no wait for its lock
        # (a writing session would wait up to the 5 s busy timeout, then fail).
        assert emails == {"a@example.com"}
        assert waited < 2.5
    async with reads() as reader:
        assert await reader.scalar(select(func.count()).select_from(owners)) == 2
