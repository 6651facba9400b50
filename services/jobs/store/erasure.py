"""User erasures (GDPR) that jobs coordinates: the to-do rows, and jobs' own share of the work.

A row per erased user, keyed by the sha256 of the user id: `user_id` is kept only while the
erasure is pending (the work needs it) and cleared when it is done, so that afterwards the
row proves an erasure happened without naming the person.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Integer, String, Table, Text, delete, or_, select, update

from gouache.db import UtcDateTime, is_unique_violation
from services.jobs.store.database import JobStore
from services.jobs.store.tables import (
    batches_table,
    deliveries_table,
    jobs_table,
    metadata,
    outbox,
    result_cache_table,
    webhooks_table,
)
from services.jobs.store.usage import compute_usage_table

PENDING = "pending"
DONE = "done"
# The creator named on jobs of shared projects whose creator was erased (the jobs are the
# project's and stay; feedback names their outcomes the same way).
ERASED_CREATOR = "erased"

erasures_table = Table(
    "user_erasures",
    metadata,
    Column("subject_sha256", String(64), primary_key=True),
    Column("user_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True, index=True),
    Column("finished_at", UtcDateTime, nullable=True),
)

# Published outbox rows read per statement while looking for the user's events.
_OUTBOX_BATCH = 500


class EventsInFlight(RuntimeError):
    """The outbox still holds an unpublished event about the user: try again shortly."""


def subject_of(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()


@dataclass(frozen=True)
class Erasure:
    subject_sha256: str
    user_id: str | None
    status: str
    attempts: int
    last_error: str | None
    requested_at: datetime
    finished_at: datetime | None


def _erasure(row: object) -> Erasure:
    return Erasure(
        subject_sha256=row.subject_sha256,  # type: ignore[attr-defined]
        user_id=row.user_id,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        attempts=row.attempts,  # type: ignore[attr-defined]
        last_error=row.last_error,  # type: ignore[attr-defined]
        requested_at=row.requested_at,  # type: ignore[attr-defined]
        finished_at=row.finished_at,  # type: ignore[attr-defined]
    )


async def get_erasure(store: JobStore, user_id: str) -> Erasure | None:
    query = select(erasures_table).where(erasures_table.c.subject_sha256 == subject_of(user_id))
    async with store.reads() as session:
        row = (await session.execute(query)).first()
    return None if row is None else _erasure(row)


async def request_erasure(store: JobStore, user_id: str, now: datetime) -> Erasure:
    """The user's erasure, added as pending unless one exists (asking again reports it)."""
    subject = subject_of(user_id)
    try:
        async with store.transaction() as uow:
            found = (
                await uow.session.execute(
                    select(erasures_table).where(erasures_table.c.subject_sha256 == subject)
                )
            ).first()
            if found is None:
                await uow.session.execute(
                    erasures_table.insert().values(
                        subject_sha256=subject,
                        user_id=user_id,
                        status=PENDING,
                        attempts=0,
                        requested_at=now,
                        next_attempt_at=now,
                    )
                )
    except Exception as exc:
        if not is_unique_violation(exc):
            raise  # two requests at once: the other one added it
    erasure = await get_erasure(store, user_id)
    assert erasure is not None
    return erasure


async def due_erasures(store: JobStore, now: datetime, limit: int) -> list[Erasure]:
    query = (
        select(erasures_table)
        .where(erasures_table.c.status == PENDING, erasures_table.c.next_attempt_at <= now)
        .order_by(erasures_table.c.next_attempt_at)
        .limit(limit)
    )
    async with store.reads() as session:
        return [_erasure(row) for row in await session.execute(query)]


async def record_failure(
    store: JobStore, subject: str, error: str, next_attempt_at: datetime
) -> None:
    async with store.transaction() as uow:
        await uow.session.execute(
            update(erasures_table)
            .where(erasures_table.c.subject_sha256 == subject)
            .values(
                attempts=erasures_table.c.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=next_attempt_at,
            )
        )


async def erase_own_rows(store: JobStore, user_id: str, now: datetime) -> None:
    """Jobs' share, in one transaction: the deliveries, webhooks, cache entries, jobs,
    batches and compute counters of the user's personal project (owner_id is their id), the
    user's name on the jobs they created in shared projects (those stay, the project's, with
    ERASED_CREATOR as creator), and the published outbox events that name the user; then the
    erasure is done and forgets the user id."""
    subject = subject_of(user_id)
    needle = user_id.encode()
    async with store.transaction() as uow:
        session = uow.session
        their_jobs = select(jobs_table.c.job_id).where(jobs_table.c.owner_id == user_id)
        their_hooks = select(webhooks_table.c.webhook_id).where(
            webhooks_table.c.owner_id == user_id
        )
        await session.execute(
            delete(deliveries_table).where(
                or_(
                    deliveries_table.c.job_id.in_(their_jobs),
                    deliveries_table.c.webhook_id.in_(their_hooks),
                )
            )
        )
        await session.execute(delete(webhooks_table).where(webhooks_table.c.owner_id == user_id))
        await session.execute(
            delete(result_cache_table).where(result_cache_table.c.owner_id == user_id)
        )
        await session.execute(delete(jobs_table).where(jobs_table.c.owner_id == user_id))
        await session.execute(
            update(jobs_table).where(jobs_table.c.user_id == user_id).values(user_id=ERASED_CREATOR)
        )
        await session.execute(delete(batches_table).where(batches_table.c.owner_id == user_id))
        await session.execute(
            delete(compute_usage_table).where(compute_usage_table.c.owner_id == user_id)
        )
        # Published events are kept a day for inspection; the user's go now. An unpublished
        # one (e.g. the cancellation of their running job, a moment ago) must still reach its
        # consumers first: the attempt fails, rolling all of this back, and is retried.
        after = ""
        while True:
            rows = list(
                await session.execute(
                    select(outbox.c.event_id, outbox.c.payload, outbox.c.published_at)
                    .where(outbox.c.event_id > after)
                    .order_by(outbox.c.event_id)
                    .limit(_OUTBOX_BATCH)
                )
            )
            theirs = [row.event_id for row in rows if needle in bytes(row.payload)]
            if any(row.published_at is None for row in rows if row.event_id in theirs):
                raise EventsInFlight(
                    "events about the user are still being published; erasing after them"
                )
            if theirs:
                await session.execute(delete(outbox).where(outbox.c.event_id.in_(theirs)))
            if len(rows) < _OUTBOX_BATCH:
                break
            after = rows[-1].event_id
        await session.execute(
            update(erasures_table)
            .where(erasures_table.c.subject_sha256 == subject)
            .values(
                user_id=None, status=DONE, last_error=None, finished_at=now, next_attempt_at=None
            )
        )
