"""Transactional outbox: events stored with the state change, then relayed to JetStream.

A service calls ``add_event`` inside the unit of work that changes its state, so an event
exists exactly when the change committed: a rolled-back transaction leaves no event, and a
crash after the commit cannot lose one. ``OutboxRelay`` publishes unpublished rows in
creation order and marks them published.

A crash (or a failed write) between publishing a row and marking it just publishes the row
again later. That is harmless: the event id is the JetStream ``Nats-Msg-Id``, so a
republish within the stream's duplicate window (10 minutes) is dropped by JetStream, and
consumers are idempotent on event ids for anything later (see ``mark_processed``). Several
relays over one table (replicas) are harmless for the same reason, only wasteful.

Each row also keeps the W3C trace context current when it was written (``headers``), and
the relay publishes under it, so the trace of the call that changed the state goes on
through NATS to the consumers, however late the relay publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gouache.bus.jetstream import backoff_delay, check_event_id, publish_payload
from gouache.bus.tracing import current_trace_headers
from gouache.db.types import PortableJSON, UtcDateTime, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PendingEvent:
    event_id: str
    subject: str
    event_type: str
    payload: bytes
    headers: Mapping[str, str] | None


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    """Define the outbox table in a service's metadata.

    Columns: event_id (primary key), subject, event_type (full proto name, sent as the
    Gouache-Event-Type header), payload (serialized protobuf), headers (a JSON object: the
    W3C trace context the event was written under, published with it; NULL in rows from
    before it existed), created_at, published_at (NULL until relayed). A partial index
    keeps finding unpublished rows cheap however many published ones the table holds.
    """
    table = Table(
        name,
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("subject", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", PortableJSON, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
    )
    unpublished = table.c.published_at.is_(None)
    Index(
        f"ix_{name}_unpublished",
        table.c.created_at,
        table.c.event_id,
        postgresql_where=unpublished,
        sqlite_where=unpublished,
    )
    return table


async def add_event(
    session: AsyncSession, table: Table, subject: str, message: Message, event_id: str
) -> None:
    """Store an event in the caller's transaction; it is published only if that commits.

    The current trace context is stored with it, so its publish continues this trace.
    Call ``OutboxRelay.notify()`` after the commit so the relay publishes at once instead
    of at its next poll.
    """
    check_event_id(message, event_id)
    await session.execute(
        insert(table).values(
            event_id=event_id,
            subject=subject,
            event_type=message.DESCRIPTOR.full_name,
            payload=message.SerializeToString(),
            headers=current_trace_headers() or None,
            created_at=utc_now(),
        )
    )


class OutboxRelay:
    """Publishes an outbox table's unpublished events to JetStream, in creation order.

    Runs as one asyncio task between ``start()`` and ``stop()``. It wakes on ``notify()``
    or every poll_interval, publishes batches until none is left, and when NATS or the
    database fails it logs and retries with exponential backoff, never giving up. Published
    rows are deleted once older than retention.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        js: JetStreamContext,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        publish_timeout: float = 5.0,
        retention: timedelta = timedelta(days=1),
        purge_interval: float = 600.0,
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        # Finding unpublished rows only reads: on SQLite a read-only session takes no write
        # lock (gouache.db.read_only), so a poll never makes a CreateJob wait.
        self._reads = reads or sessions
        self._table = table
        self._js = js
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._publish_timeout = publish_timeout
        self._retention = retention
        self._purge_interval = purge_interval
        self._next_purge = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Wake the relay now: call after committing a transaction that added events."""
        self._wake.set()

    async def start(self) -> None:
        """Start relaying in a background task."""
        if self._task is not None:
            raise RuntimeError("the outbox relay is already running")
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._table.name}")

    async def stop(self) -> None:
        """Stop relaying; a row published but not yet marked is republished next time."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def relay_batch(self) -> int:
        """Publish up to batch_size unpublished events in order, then mark them published
        in one transaction; return how many.

        When a publish fails, the events published before it are still marked (and the
        error raised): only the rest are published again later.
        """
        rows = await self._unpublished()
        published: list[str] = []
        try:
            for row in rows:
                await publish_payload(
                    self._js,
                    row.subject,
                    row.payload,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    ack_timeout=self._publish_timeout,
                    trace_context=row.headers or {},
                )
                published.append(row.event_id)
        finally:
            if published:
                await self._mark_published(published)
        return len(rows)

    async def purge_published(self, older_than: timedelta) -> int:
        """Delete events published more than older_than ago; return how many."""
        cutoff = utc_now() - older_than
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(self._table).where(self._table.c.published_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                relayed = await self.relay_batch()
                await self._purge_when_due()
            except Exception:
                failures += 1
                delay = backoff_delay(
                    failures, initial=self._retry_initial, maximum=self._retry_max
                )
                logger.warning(
                    "outbox relay %s failed (attempt %d), retrying in %.1fs",
                    self._table.name,
                    failures,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                continue
            if failures:
                logger.info(
                    "outbox relay %s recovered after %d failures", self._table.name, failures
                )
                failures = 0
            if relayed < self._batch_size:
                await self._wait_for_wake()

    async def _wait_for_wake(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    async def _unpublished(self) -> list[_PendingEvent]:
        table = self._table
        query = (
            select(
                table.c.event_id,
                table.c.subject,
                table.c.event_type,
                table.c.payload,
                table.c.headers,
            )
            .where(table.c.published_at.is_(None))
            .order_by(table.c.created_at, table.c.event_id)
            .limit(self._batch_size)
        )
        async with self._reads() as session:
            result = await session.execute(query)
            return [_PendingEvent(*row) for row in result]

    async def _mark_published(self, event_ids: list[str]) -> None:
        table = self._table
        async with self._sessions.begin() as session:
            await session.execute(
                update(table)
                .where(table.c.event_id.in_(event_ids), table.c.published_at.is_(None))
                .values(published_at=utc_now())
            )

    async def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self._purge_interval
        purged = await self.purge_published(self._retention)
        if purged:
            logger.info("outbox relay %s purged %d published events", self._table.name, purged)
