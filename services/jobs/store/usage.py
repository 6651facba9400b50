"""Compute used per owner and month: the counter plan quotas are checked against.

One row per owner (the project, a user's own id for their personal project) and UTC month, added to in the
transaction that applies a job's success, so counting costs one statement and no extra
transaction on that path; CreateJob reads one row by primary key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gouache.db import UtcDateTime
from services.jobs.store.tables import metadata

compute_usage_table = Table(
    "compute_usage",
    metadata,
    Column("owner_id", String(64), primary_key=True),
    # "2026-11": the UTC calendar month the jobs finished in.
    Column("month", String(7), primary_key=True),
    Column("compute_ms", BigInteger, nullable=False),
    Column("jobs", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def _add_statement(dialect: str, owner_id: str, month: str, compute_ms: int, at: datetime) -> Any:
    table = compute_usage_table
    values = {"owner_id": owner_id, "month": month, "compute_ms": compute_ms, "jobs": 1}
    added = {
        "compute_ms": table.c.compute_ms + compute_ms,
        "jobs": table.c.jobs + 1,
        "updated_at": at,
    }
    keys = ["owner_id", "month"]
    if dialect == "postgresql":
        pg = postgresql.insert(table).values(**values, updated_at=at)
        return pg.on_conflict_do_update(index_elements=keys, set_=added)
    if dialect == "sqlite":
        lite = sqlite.insert(table).values(**values, updated_at=at)
        return lite.on_conflict_do_update(index_elements=keys, set_=added)
    raise ValueError(f"compute usage supports postgresql and sqlite, not {dialect}")


async def add_compute(
    session: AsyncSession, *, owner_id: str, month: str, compute_ms: int, at: datetime
) -> None:
    """Adds one succeeded job's compute to its owner's month, in the caller's transaction."""
    dialect = session.get_bind().dialect.name
    await session.execute(_add_statement(dialect, owner_id, month, max(0, compute_ms), at))


async def compute_used_ms(session: AsyncSession, *, owner_id: str, month: str) -> int:
    """The owner's compute in the month so far, in milliseconds (0 before the first job)."""
    table = compute_usage_table
    query = select(table.c.compute_ms).where(table.c.owner_id == owner_id, table.c.month == month)
    value = (await session.execute(query)).scalar_one_or_none()
    return int(value or 0)
