"""Idempotent consumers: the table of event ids a consumer has applied, and marking one in
the same transaction as the change it causes, so a redelivered event changes nothing."""

from __future__ import annotations

from sqlalchemy import Column, String, Table
from sqlalchemy import MetaData as SqlMetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from gouache.db.types import UtcDateTime, utc_now


def processed_events_table(metadata: SqlMetaData, name: str = "processed_events") -> Table:
    """Define the table of event ids a consumer has applied (for mark_processed).

    One table per consumer that changes state; give each its own name when a service has
    several, since one event may matter to more than one of them.
    """
    return Table(
        name,
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", UtcDateTime, nullable=False),
    )


def _insert_ignoring_duplicates(dialect: str, table: Table) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    raise ValueError(f"mark_processed supports postgresql and sqlite, not {dialect}")


async def mark_processed(session: AsyncSession, table: Table, event_id: str) -> bool:
    """Record event_id in the caller's transaction; False if it was already processed.

    Call it in the same transaction as the state change the event causes, and skip the
    change when it returns False: a redelivered or republished event then changes nothing.
    A concurrent transaction holding the same id makes this wait for it, then answer
    False if it committed (True if it rolled back); no exception, no aborted transaction.
    """
    statement = (
        _insert_ignoring_duplicates(session.get_bind().dialect.name, table)
        .values(event_id=event_id, processed_at=utc_now())
        .returning(table.c.event_id)
    )
    result = await session.execute(statement)
    return result.first() is not None
