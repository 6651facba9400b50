"""The transactional outbox on SQLite and PostgreSQL, relayed to a real JetStream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nats.js import JetStreamContext
from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gouache.bus.jetstream import PublishError
from gouache.bus.outbox import OutboxRelay, add_event, outbox_table
from gouache.bus.subjects import JOBS_CREATED
from gouache.contracts.events.v1 import events_pb2
from gouache.db import create_all, new_metadata, session_factory
from tests.fixtures.nats import NatsServer
from tests.integration.bus.helpers import job_created, stream_messages, wait_until

Sessions = async_sessionmaker[AsyncSession]
FAST_RETRIES = {"retry_initial": 0.1, "retry_max": 0.5, "publish_timeout": 1.0}


@pytest.fixture
async def outbox(engine: AsyncEngine) -> tuple[Sessions, Table]:
    metadata = new_metadata()
    table = outbox_table(metadata)
    await create_all(engine, metadata)
    return session_factory(engine), table


@pytest.fixture
async def relay(outbox: tuple[Sessions, Table], js: JetStreamContext) -> AsyncIterator[OutboxRelay]:
    sessions, table = outbox
    relay = OutboxRelay(sessions, table, js, poll_interval=0.2, **FAST_RETRIES)
    try:
        yield relay
    finally:
        await relay.stop()


async def _add_jobs(sessions: Sessions, table: Table, *event_ids: str) -> None:
    async with sessions.begin() as session:
        for event_id in event_ids:
            await add_event(session, table, JOBS_CREATED, job_created(event_id), event_id)


async def _nothing_unpublished(sessions: Sessions, table: Table) -> bool:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(table).where(table.c.published_at.is_(None))
        )
    return count == 0


async def _stored_event_ids(js: JetStreamContext) -> list[str]:
    return [
        events_pb2.JobCreated.FromString(stored.data or b"").event_id
        for stored in await stream_messages(js, "GOUACHE_JOBS")
    ]


async def test_events_of_a_rolled_back_transaction_are_never_published(
    outbox: tuple[Sessions, Table], relay: OutboxRelay, js: JetStreamContext
) -> None:
    sessions, table = outbox
    async with sessions() as session:
        await add_event(session, table, JOBS_CREATED, job_created("evt_lost"), "evt_lost")
        await session.rollback()
    await _add_jobs(sessions, table, "evt_kept")

    await relay.start()
    relay.notify()

    await wait_until(lambda: _nothing_unpublished(sessions, table), what="outbox drained")
    assert await _stored_event_ids(js) == ["evt_kept"]


async def test_committed_events_are_published_once_in_order_across_relay_restarts(
    outbox: tuple[Sessions, Table], js: JetStreamContext
) -> None:
    sessions, table = outbox
    first_batch = [f"evt_{n}" for n in range(5)]
    for event_id in first_batch:  # one transaction each: distinct created_at
        await _add_jobs(sessions, table, event_id)
    relay = OutboxRelay(sessions, table, js, batch_size=2, poll_interval=0.2)
    await relay.start()
    await wait_until(lambda: _nothing_unpublished(sessions, table), what="first relay done")
    await relay.stop()

    # A crash after publishing but before marking rows published: the marks are lost.
    async with sessions.begin() as session:
        await session.execute(update(table).values(published_at=None))
    await _add_jobs(sessions, table, "evt_5", "evt_6")
    restarted = OutboxRelay(sessions, table, js, poll_interval=0.2)
    await restarted.start()
    try:
        restarted.notify()
        await wait_until(lambda: _nothing_unpublished(sessions, table), what="restarted relay done")
    finally:
        await restarted.stop()

    assert await _stored_event_ids(js) == [*first_batch, "evt_5", "evt_6"]


async def test_the_relay_keeps_working_across_a_nats_restart(
    outbox: tuple[Sessions, Table],
    relay: OutboxRelay,
    js: JetStreamContext,
    nats_server: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions, table = outbox
    caplog.set_level(logging.INFO, logger="gouache.bus.outbox")
    await relay.start()
    await _add_jobs(sessions, table, "evt_before")
    relay.notify()
    await wait_until(lambda: _nothing_unpublished(sessions, table), what="first event relayed")

    nats_server.stop()
    await _add_jobs(sessions, table, "evt_during")
    relay.notify()
    await wait_until(lambda: "failed (attempt 2)" in caplog.text, what="relay retrying")
    nats_server.start()

    await wait_until(
        lambda: _nothing_unpublished(sessions, table), within=20, what="relayed after restart"
    )
    # The relay logs its recovery after the batch it marked published has committed.
    await wait_until(lambda: "recovered after" in caplog.text, what="the recovery logged")
    assert await _stored_event_ids(js) == ["evt_before", "evt_during"]


async def test_published_events_are_purged_after_retention(
    outbox: tuple[Sessions, Table], relay: OutboxRelay
) -> None:
    sessions, table = outbox
    await _add_jobs(sessions, table, "evt_1", "evt_2")
    assert await relay.relay_batch() == 2
    await _add_jobs(sessions, table, "evt_3")

    assert await relay.purge_published(timedelta(hours=1)) == 0
    assert await relay.purge_published(timedelta(0)) == 2
    async with sessions() as session:
        remaining = await session.scalars(select(table.c.event_id))
        assert remaining.all() == ["evt_3"]


async def test_a_failed_publish_keeps_the_events_published_before_it_marked(
    outbox: tuple[Sessions, Table], relay: OutboxRelay, js: JetStreamContext
) -> None:
    """A batch is marked in one transaction after its publishes; one that fails midway
    still marks those that went out, so only the rest are published again."""
    sessions, table = outbox
    await _add_jobs(sessions, table, "evt_1")
    async with sessions.begin() as session:
        # No stream holds this subject: JetStream has no responder and the publish fails.
        await add_event(session, table, "gouache.nowhere", job_created("evt_2"), "evt_2")
    with pytest.raises(PublishError):
        await relay.relay_batch()
    async with sessions() as session:
        unpublished = await session.scalars(
            select(table.c.event_id).where(table.c.published_at.is_(None))
        )
        assert unpublished.all() == ["evt_2"]
    assert await _stored_event_ids(js) == ["evt_1"]
