"""mark_processed on SQLite and PostgreSQL: once per event id, inside the caller's transaction."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gouache.bus.idempotency import mark_processed, processed_events_table
from gouache.db import create_all, new_metadata, session_factory

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def processed(engine: AsyncEngine) -> tuple[Sessions, Table]:
    metadata = new_metadata()
    table = processed_events_table(metadata)
    await create_all(engine, metadata)
    return session_factory(engine), table


async def test_an_event_is_processed_once(processed: tuple[Sessions, Table]) -> None:
    sessions, table = processed
    async with sessions.begin() as session:
        assert await mark_processed(session, table, "evt_1")
    async with sessions.begin() as session:
        assert not await mark_processed(session, table, "evt_1")
        assert await mark_processed(session, table, "evt_2")


async def test_a_rolled_back_mark_leaves_the_event_unprocessed(
    processed: tuple[Sessions, Table],
) -> None:
    sessions, table = processed
    async with sessions() as session:
        assert await mark_processed(session, table, "evt_1")
        await session.rollback()
    async with sessions.begin() as session:
        assert await mark_processed(session, table, "evt_1")


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_racing_duplicate_waits_for_the_first_transaction(
    processed: tuple[Sessions, Table], first_commits: bool
) -> None:
    sessions, table = processed

    async def mark_in_new_transaction() -> bool:
        async with sessions.begin() as session:
            return bool(await mark_processed(session, table, "evt_1"))

    async with sessions() as first:
        assert await mark_processed(first, table, "evt_1")
        second = asyncio.create_task(mark_in_new_transaction())
        done, _ = await asyncio.wait({second}, timeout=0.3)
        assert not done, "the duplicate must wait for the first transaction to end"
        await (first.commit() if first_commits else first.rollback())

    assert await asyncio.wait_for(second, timeout=10) is not first_commits
