"""The feedback tables (job outcomes, ratings, processed events) and their adapter."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement, false

from gouache.bus.idempotency import mark_processed, processed_events_table
from gouache.db import (
    Migrations,
    ServiceDatabase,
    UtcDateTime,
    is_unique_violation,
    new_id,
    new_metadata,
    utc_now,
)
from services.feedback.domain import (
    ERASED_USER,
    GPU_DEVICE,
    SUCCEEDED,
    JobOutcome,
    Rating,
    VersionRecords,
)
from services.feedback.usage import UsageQuery, UsageRecord

metadata = new_metadata()

outcomes = Table(
    "feedback_job_outcomes",
    metadata,
    Column("job_id", String(64), primary_key=True),
    # The project the job belongs to (a user's own id: their personal project), and the user
    # who created it (migration 0006, backfilled with owner_id: before projects, the same).
    Column("owner_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("latency_ms", BigInteger, nullable=False),
    Column("finished_at", UtcDateTime(), nullable=False),
    # Answered from jobs' result cache (migration 0002): rateable, but not in version stats.
    Column("cached", Boolean, nullable=False, server_default=false()),
    # The result's width x height as its worker reported it; 0 when unknown (migration 0003).
    Column("output_pixels", BigInteger, nullable=False, server_default="0"),
    # The worker's time on the job and the device kind its model ran on; 0 and "" when
    # unknown (migration 0005).
    Column("compute_ms", BigInteger, nullable=False, server_default="0"),
    Column("device", String(16), nullable=False, server_default=""),
    # The event that last set this row, for tracing a number back to its source.
    Column("event_id", String(64), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_feedback_job_outcomes_model_version_status", "model_version", "status"),
    # Windowed stats (GetModelVersionStats.since) read one version's recent jobs.
    Index("ix_feedback_job_outcomes_model_version_finished_at", "model_version", "finished_at"),
    # A project's usage (GetUsage) reads its outcomes in a window (migration 0004), a user's
    # the outcomes of the jobs they created (migration 0006).
    Index("ix_feedback_job_outcomes_owner_id_finished_at", "owner_id", "finished_at"),
    Index("ix_feedback_job_outcomes_user_id_finished_at", "user_id", "finished_at"),
)

ratings = Table(
    "feedback_ratings",
    metadata,
    Column("feedback_id", String(40), primary_key=True),
    Column("job_id", String(64), nullable=False, unique=True),
    Column("owner_id", String(64), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("comments", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

processed_events = processed_events_table(metadata, "feedback_processed_events")

# Users erased, by the SHA-256 of their id, never the id (migration 0007): an outcome event
# that names one and arrives after the erasure (a job that finished while it ran, still in
# the stream) is recorded anonymised as well.
erased_subjects = Table(
    "feedback_erased_subjects",
    metadata,
    Column("subject_sha256", String(64), primary_key=True),
    Column("erased_at", UtcDateTime(), nullable=False),
)


def subject_sha256(user_id: str) -> str:
    """How an erased user is remembered: the hex SHA-256 of their id."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def _outcome(row: RowMapping) -> JobOutcome:
    return JobOutcome(
        job_id=row["job_id"],
        owner_id=row["owner_id"],
        model_version=row["model_version"],
        status=row["status"],
        latency_ms=int(row["latency_ms"]),
        finished_at=row["finished_at"],
        cached=bool(row["cached"]),
        output_pixels=int(row["output_pixels"]),
        compute_ms=int(row["compute_ms"]),
        device=row["device"],
        user_id=row["user_id"],
    )


def _rating(row: RowMapping) -> Rating:
    return Rating(
        feedback_id=row["feedback_id"],
        job_id=row["job_id"],
        owner_id=row["owner_id"],
        rating=int(row["rating"]),
        comments=row["comments"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class FeedbackDatabase(ServiceDatabase):
    """Job outcomes and ratings in one SQLite or PostgreSQL database."""

    migrations = Migrations("feedback", Path(__file__).with_name("migrations"), metadata)

    async def record_outcome(self, outcome: JobOutcome, *, event_id: str, at: datetime) -> bool:
        """Stores a job's outcome once per event id; False when the event was seen before.

        The event id is marked in the same transaction, so a redelivered event changes
        nothing. One row per job: a second outcome event for the same job (another event
        id) replaces the first only if it finished later, so a job is never counted twice.
        """
        async with self.sessions.begin() as session:
            if not await mark_processed(session, processed_events, event_id):
                return False
            existing = (
                await session.execute(
                    select(outcomes.c.finished_at).where(outcomes.c.job_id == outcome.job_id)
                )
            ).first()
            owner_id, user_id = await self._unless_erased(
                session, outcome.owner_id, outcome.user_id
            )
            values = {
                "owner_id": owner_id,
                "user_id": user_id,
                "model_version": outcome.model_version,
                "status": outcome.status,
                "latency_ms": outcome.latency_ms,
                "finished_at": outcome.finished_at,
                "cached": outcome.cached,
                "output_pixels": outcome.output_pixels,
                "compute_ms": outcome.compute_ms,
                "device": outcome.device,
                "event_id": event_id,
                "recorded_at": at,
            }
            if existing is None:
                await session.execute(insert(outcomes), {"job_id": outcome.job_id, **values})
            elif outcome.finished_at >= existing.finished_at:
                await session.execute(
                    update(outcomes).where(outcomes.c.job_id == outcome.job_id).values(**values)
                )
        return True

    @staticmethod
    async def _unless_erased(session: AsyncSession, owner_id: str, user_id: str) -> tuple[str, str]:
        """owner_id and user_id, each replaced by ERASED_USER if its user was erased."""
        names = {subject_sha256(owner_id): owner_id, subject_sha256(user_id): user_id}
        erased = {
            names[row[0]]
            for row in await session.execute(
                select(erased_subjects.c.subject_sha256).where(
                    erased_subjects.c.subject_sha256.in_(list(names))
                )
            )
        }
        return (
            ERASED_USER if owner_id in erased else owner_id,
            ERASED_USER if user_id in erased else user_id,
        )

    async def outcome(self, job_id: str) -> JobOutcome | None:
        async with self.reads() as session:
            row = (
                (await session.execute(select(outcomes).where(outcomes.c.job_id == job_id)))
                .mappings()
                .first()
            )
        return _outcome(row) if row else None

    async def save_rating(
        self, *, job_id: str, owner_id: str, rating: int, comments: str, at: datetime
    ) -> Rating:
        """Inserts the job's rating, or replaces rating and comments of the existing one."""
        try:
            return await self._upsert_rating(job_id, owner_id, rating, comments, at)
        except IntegrityError as exc:
            # Two first ratings raced; the loser's insert failed, so it updates instead.
            if not is_unique_violation(exc):
                raise
            return await self._upsert_rating(job_id, owner_id, rating, comments, at)

    async def _upsert_rating(
        self, job_id: str, owner_id: str, rating: int, comments: str, at: datetime
    ) -> Rating:
        async with self.sessions.begin() as session:
            existing = (
                await session.execute(
                    select(ratings.c.feedback_id).where(ratings.c.job_id == job_id)
                )
            ).first()
            if existing is None:
                await session.execute(
                    insert(ratings).values(
                        feedback_id=new_id("fbk"),
                        job_id=job_id,
                        owner_id=owner_id,
                        rating=rating,
                        comments=comments,
                        created_at=at,
                        updated_at=at,
                    )
                )
            else:
                await session.execute(
                    update(ratings)
                    .where(ratings.c.job_id == job_id)
                    .values(rating=rating, comments=comments, updated_at=at)
                )
            row = (
                (await session.execute(select(ratings).where(ratings.c.job_id == job_id)))
                .mappings()
                .one()
            )
        return _rating(row)

    async def knows_version(self, model_version: str) -> bool:
        """Whether any job of the version has finished, ever."""
        query = select(outcomes.c.job_id).where(outcomes.c.model_version == model_version)
        async with self.reads() as session:
            return (await session.execute(query.limit(1))).first() is not None

    async def version_records(
        self, model_version: str | None, *, since: datetime | None = None
    ) -> list[VersionRecords]:
        """Counts, succeeded latencies and rating sums per model version, by name.

        With since, only jobs that finished at or after it count, and only their ratings.
        Jobs answered from the result cache ran no model: they are left out of the counts
        and latencies (a version's error rate and speed), while their ratings count (the
        image is the version's).
        """
        ran = outcomes.c.cached == false()
        counts = (
            select(outcomes.c.model_version, outcomes.c.status, func.count())
            .where(ran)
            .group_by(outcomes.c.model_version, outcomes.c.status)
        )
        latencies = select(outcomes.c.model_version, outcomes.c.latency_ms).where(
            outcomes.c.status == SUCCEEDED, ran
        )
        rated = (
            select(
                outcomes.c.model_version, func.count(), func.coalesce(func.sum(ratings.c.rating), 0)
            )
            .select_from(ratings.join(outcomes, ratings.c.job_id == outcomes.c.job_id))
            .group_by(outcomes.c.model_version)
        )
        if model_version is not None:
            counts = counts.where(outcomes.c.model_version == model_version)
            latencies = latencies.where(outcomes.c.model_version == model_version)
            rated = rated.where(outcomes.c.model_version == model_version)
        if since is not None:
            counts = counts.where(outcomes.c.finished_at >= since)
            latencies = latencies.where(outcomes.c.finished_at >= since)
            rated = rated.where(outcomes.c.finished_at >= since)
        status_counts: dict[str, dict[str, int]] = defaultdict(dict)
        latency_values: dict[str, list[float]] = defaultdict(list)
        rating_totals: dict[str, tuple[int, int]] = {}
        async with self.reads() as session:
            for version, status, count in (await session.execute(counts)).all():
                status_counts[version][status] = int(count)
            for version, latency in (await session.execute(latencies)).all():
                latency_values[version].append(float(latency))
            for version, count, total in (await session.execute(rated)).all():
                rating_totals[version] = (int(count), int(total))
        return [
            VersionRecords(
                model_version=version,
                jobs_succeeded=by_status.get(SUCCEEDED, 0),
                jobs_failed=sum(n for status, n in by_status.items() if status != SUCCEEDED),
                latencies_ms=latency_values.get(version, []),
                ratings_count=rating_totals.get(version, (0, 0))[0],
                ratings_sum=rating_totals.get(version, (0, 0))[1],
            )
            for version, by_status in sorted(status_counts.items())
        ]

    async def erase_user(self, user_id: str, anonymous_id: str) -> tuple[int, int]:
        """Deletes the user's ratings and hands their outcomes to `anonymous_id`, together:
        those they created (user_id), and those of their personal project (owner_id); the
        outcomes they created in shared projects stay those projects'."""
        theirs = (outcomes.c.owner_id == user_id) | (outcomes.c.user_id == user_id)
        subject = subject_sha256(user_id)
        async with self.sessions() as session, session.begin():
            remembered = await session.execute(
                select(erased_subjects.c.subject_sha256).where(
                    erased_subjects.c.subject_sha256 == subject
                )
            )
            if remembered.first() is None:
                await session.execute(
                    insert(erased_subjects).values(subject_sha256=subject, erased_at=utc_now())
                )
            deleted = await session.execute(delete(ratings).where(ratings.c.owner_id == user_id))
            moved = await session.execute(
                update(outcomes)
                .where(theirs)
                .values(
                    owner_id=case(
                        (outcomes.c.owner_id == user_id, anonymous_id), else_=outcomes.c.owner_id
                    ),
                    user_id=case(
                        (outcomes.c.user_id == user_id, anonymous_id), else_=outcomes.c.user_id
                    ),
                )
            )
        return (
            int(getattr(deleted, "rowcount", 0) or 0),
            int(getattr(moved, "rowcount", 0) or 0),
        )

    async def usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Finished jobs per project (owner), user (creator) and model version in the window,
        in that order, each split by period first when the query groups by day or month (the
        UTC calendar period each job finished in).

        Every outcome counts, those answered from the result cache too (jobs_cached says
        how many): usage is what a user received, not what the models computed. Compute
        and megapixels are summed as integers (ms, pixels), so totals are exact.
        """
        succeeded = outcomes.c.status == SUCCEEDED
        on_gpu = succeeded & (outcomes.c.device == GPU_DEVICE)
        # Ungrouped, the period is an empty constant, left out of GROUP BY and ORDER BY
        # (PostgreSQL refuses a constant there).
        keys: tuple[ColumnElement[str], ...] = (
            outcomes.c.owner_id,
            outcomes.c.user_id,
            outcomes.c.model_version,
        )
        period: ColumnElement[str] = literal_column("''")
        if query.group_by:
            period = _period(self.engine.dialect.name, query.group_by)
            keys = (period, *keys)
        statement = (
            select(
                period,
                outcomes.c.owner_id,
                outcomes.c.user_id,
                outcomes.c.model_version,
                func.count().filter(succeeded),
                func.count().filter(outcomes.c.status != SUCCEEDED),
                func.coalesce(func.sum(case((succeeded & outcomes.c.cached, 1), else_=0)), 0),
                func.max(outcomes.c.finished_at),
                func.coalesce(func.sum(case((succeeded, outcomes.c.output_pixels), else_=0)), 0),
                func.coalesce(func.sum(case((succeeded, outcomes.c.compute_ms), else_=0)), 0),
                func.coalesce(func.sum(case((on_gpu, outcomes.c.compute_ms), else_=0)), 0),
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        if query.user_id is not None:
            statement = statement.where(outcomes.c.user_id == query.user_id)
        if query.project_id is not None:
            statement = statement.where(outcomes.c.owner_id == query.project_id)
        if query.since is not None:
            statement = statement.where(outcomes.c.finished_at >= query.since)
        if query.until is not None:
            statement = statement.where(outcomes.c.finished_at < query.until)
        async with self.reads() as session:
            rows = (await session.execute(statement)).all()
        return [
            UsageRecord(
                project_id=project,
                user_id=user,
                model_version=version,
                jobs_succeeded=int(ok),
                jobs_failed=int(failed),
                jobs_cached=int(cached),
                last_finished_at=last,
                output_megapixels=int(pixels) / 1e6,
                compute_ms=int(compute),
                gpu_ms=int(gpu),
                period=str(when),
            )
            for when, project, user, version, ok, failed, cached, last, pixels, compute, gpu in rows
        ]


def _period(dialect: str, group_by: str) -> ColumnElement[str]:
    """The UTC day ("2026-11-30") or month ("2026-11") an outcome finished in, in SQL.

    SQLite keeps UtcDateTime as naive UTC text ("2026-11-30 12:00:00.000000"), so the
    period is its prefix; PostgreSQL formats the timestamptz in UTC.
    """
    chars = 10 if group_by == "day" else 7
    if dialect == "sqlite":
        return func.substr(outcomes.c.finished_at, 1, chars)
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD" if group_by == "day" else "YYYY-MM"
        return func.to_char(func.timezone("UTC", outcomes.c.finished_at), pattern)
    raise ValueError(f"usage periods support sqlite and postgresql, not {dialect}")
