"""JobStore: the jobs database, its transactions and its reads outside them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from gouache.db import (
    Migrations,
    ServiceDatabase,
    is_unique_violation,
)
from gouache.secretbox import Sealed, SecretBox
from services.jobs.convert import OutgoingEvent
from services.jobs.domain import batches as batch_rules
from services.jobs.domain.batches import Batch
from services.jobs.domain.cache import CacheEntry
from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.paging import PageCursor
from services.jobs.domain.routing import (
    ModelRoute,
    ModelVersion,
    RoutingTable,
)
from services.jobs.domain.webhooks import (
    DeliveryStatus,
    DeliveryUpdate,
    Webhook,
)
from services.jobs.store.rows import (
    Delivery,
    DeliveryTask,
    batch_from_row,
    cache_entry_from_row,
    delivery_from_row,
    job_from_row,
    webhook_from_row,
)
from services.jobs.store.tables import (
    batches_table,
    deliveries_table,
    jobs_table,
    metadata,
    result_cache_table,
    webhooks_table,
)
from services.jobs.store.unit_of_work import (
    UnitOfWork,
    read_routing_table,
)


class JobStore(ServiceDatabase):
    """The jobs service's database; each method is one short transaction."""

    migrations = Migrations("jobs", Path(__file__).parents[1] / "migrations", metadata)

    def __init__(self, engine: AsyncEngine, *, secrets: SecretBox | None = None) -> None:
        super().__init__(engine)
        # Seals and opens webhook secrets (None: a store that never touches webhooks).
        self.secrets = secrets

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work that commits on success and rolls back on any error."""
        async with self.sessions.begin() as session:
            yield UnitOfWork(session, self.secrets)

    async def seal_webhook_secrets(self, *, batch_size: int = 200) -> int:
        """Seals, under the first key, every secret not yet under it; returns how many.

        Rows from before migration 0007 hold plaintext (no key id); rows sealed under an
        older key (rotation) are opened with it and sealed again. Runs at start, before
        serving, in batches of `batch_size` rows, each its own transaction, so a crash
        midway leaves every row readable and the next start carries on. A row under a
        key no longer configured raises SecretBoxError naming that key id.
        """
        box = self._box()
        done = 0
        stale = or_(
            webhooks_table.c.secret_key_id.is_(None),
            webhooks_table.c.secret_key_id != box.primary_id,
        )
        while True:
            async with self.transaction() as uow:
                query = (
                    select(
                        webhooks_table.c.webhook_id,
                        webhooks_table.c.secret,
                        webhooks_table.c.secret_key_id,
                    )
                    .where(stale)
                    .order_by(webhooks_table.c.webhook_id)
                    .limit(batch_size)
                    .with_for_update()
                )
                rows = list(await uow.session.execute(query))
                for row in rows:
                    plaintext = (
                        row.secret
                        if row.secret_key_id is None
                        else box.open(Sealed(row.secret_key_id, row.secret), row.webhook_id)
                    )
                    sealed = box.seal(plaintext, row.webhook_id)
                    await uow.session.execute(
                        update(webhooks_table)
                        .where(webhooks_table.c.webhook_id == row.webhook_id)
                        .values(secret=sealed.token, secret_key_id=sealed.key_id)
                    )
            done += len(rows)
            if len(rows) < batch_size:
                return done

    def _box(self) -> SecretBox:
        if self.secrets is None:
            raise RuntimeError("this JobStore has no secret keys: it cannot read webhook secrets")
        return self.secrets

    async def get_job(self, job_id: str) -> Job | None:
        """A job by id, whoever owns it."""
        async with self.reads() as session:
            row = (
                await session.execute(select(jobs_table).where(jobs_table.c.job_id == job_id))
            ).first()
        return None if row is None else job_from_row(row)

    async def count_unfinished(self) -> dict[JobStatus, int]:
        """How many jobs wait in each state that is not final (for the in-flight gauge)."""
        status = jobs_table.c.status
        unfinished = [s.value for s in JobStatus if not s.is_final]
        query = select(status, func.count()).where(status.in_(unfinished)).group_by(status)
        async with self.reads() as session:
            return {JobStatus(row[0]): int(row[1]) for row in await session.execute(query)}

    async def find_job_by_key(self, owner_id: str, key: str) -> Job | None:
        """The owner's job created with an idempotency key, if any."""
        query = select(jobs_table).where(
            jobs_table.c.owner_id == owner_id, jobs_table.c.idempotency_key == key
        )
        async with self.reads() as session:
            row = (await session.execute(query)).first()
        return None if row is None else job_from_row(row)

    async def create_job(
        self,
        job: Job,
        event: OutgoingEvent,
        *,
        key_expired_before: datetime | None,
        cache_hit: CacheEntry | None = None,
        now: datetime | None = None,
    ) -> int | None:
        """Stores a new job and its event together; None if its idempotency key was taken.

        A pending job goes with its JobCreated event. A job answered from the cache
        (`cache_hit`, the job already succeeded) goes with its JobSucceeded event, its
        webhook deliveries and the entry's hit count, all in one transaction. Returns how
        many webhook deliveries were queued. When another request took the job's
        idempotency key first (the unique constraint decides races) nothing is written.
        `key_expired_before` releases the key from an older job created before it (None:
        no job was found holding the key, so there is nothing to release).
        An item of a batch is only created while the batch runs (FAILED_PRECONDITION once
        it is canceled); a cache hit that is the batch's last final item ends the batch.
        """
        try:
            async with self.transaction() as uow:
                if job.batch_id:
                    batch = await uow.batch_for_update(job.batch_id)
                    if batch is None:
                        raise ValueError(f"job {job.job_id} names unknown batch {job.batch_id}")
                    batch_rules.check_open(batch)
                if job.idempotency_key and key_expired_before is not None:
                    await uow.release_expired_key(
                        job.owner_id, job.idempotency_key, key_expired_before
                    )
                await uow.insert_job(job)
                await uow.add_event(event)
                if cache_hit is None:
                    return 0
                at = now or job.created_at
                await uow.record_cache_hit(cache_hit, at)
                deliveries = await uow.enqueue_webhooks(job, "job.succeeded", at)
                if job.batch_id:
                    deliveries += await uow.settle_batch(job.batch_id, at)
                return deliveries
        except Exception as exc:
            if job.idempotency_key and is_unique_violation(exc):
                return None
            raise

    async def find_cache_entry(self, owner_id: str, key: str) -> CacheEntry | None:
        """The owner's stored answer for a key, if any."""
        table = result_cache_table
        query = select(table).where(table.c.owner_id == owner_id, table.c.cache_key == key)
        async with self.reads() as session:
            row = (await session.execute(query)).first()
        return None if row is None else cache_entry_from_row(row)

    async def drop_cache_entry(self, entry: CacheEntry) -> bool:
        """Deletes an entry unless it was replaced meanwhile (another result image)."""
        table = result_cache_table
        async with self.transaction() as uow:
            result = await uow.session.execute(
                delete(table).where(
                    table.c.owner_id == entry.owner_id,
                    table.c.cache_key == entry.key,
                    table.c.result_image_id == entry.result_image_id,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def count_cache_entries(self) -> int:
        """How many answers the result cache holds (for its gauge)."""
        async with self.reads() as session:
            query = select(func.count()).select_from(result_cache_table)
            return int((await session.execute(query)).scalar_one())

    async def list_jobs(
        self, owner_id: str, *, status: JobStatus | None, after: PageCursor | None, limit: int
    ) -> list[Job]:
        """The owner's jobs, newest first, after a cursor."""
        table = jobs_table
        query = select(table).where(table.c.owner_id == owner_id)
        if status is not None:
            query = query.where(table.c.status == status.value)
        if after is not None:
            query = query.where(
                or_(
                    table.c.created_at < after.created_at,
                    and_(table.c.created_at == after.created_at, table.c.job_id < after.job_id),
                )
            )
        query = query.order_by(table.c.created_at.desc(), table.c.job_id.desc()).limit(limit)
        async with self.reads() as session:
            return [job_from_row(row) for row in await session.execute(query)]

    async def create_batch(self, batch: Batch, *, key_expired_before: datetime) -> bool:
        """Stores a new batch; False if another request took its idempotency key first."""
        try:
            async with self.transaction() as uow:
                await uow.insert_batch(batch, key_expired_before)
        except Exception as exc:
            if batch.idempotency_key and is_unique_violation(exc):
                return False
            raise
        return True

    async def get_batch(self, batch_id: str) -> Batch | None:
        """A batch by id, whoever owns it."""
        query = select(batches_table).where(batches_table.c.batch_id == batch_id)
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        return None if row is None else batch_from_row(row)

    async def find_batch_by_key(self, owner_id: str, key: str) -> Batch | None:
        """The owner's batch created with an idempotency key, if any."""
        table = batches_table
        query = select(table).where(table.c.owner_id == owner_id, table.c.idempotency_key == key)
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        return None if row is None else batch_from_row(row)

    async def list_batches(
        self, owner_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Batch]:
        """The owner's batches, newest first, after a (created_at, batch_id) cursor."""
        table = batches_table
        query = select(table).where(table.c.owner_id == owner_id)
        if after is not None:
            created_at, batch_id = after
            query = query.where(
                or_(
                    table.c.created_at < created_at,
                    and_(table.c.created_at == created_at, table.c.batch_id < batch_id),
                )
            )
        query = query.order_by(table.c.created_at.desc(), table.c.batch_id.desc()).limit(limit)
        async with self.sessions() as session:
            return [batch_from_row(row) for row in await session.execute(query)]

    async def batch_counts(self, batch_ids: Sequence[str]) -> dict[str, dict[JobStatus, int]]:
        """How many items of each batch are in each status."""
        counts: dict[str, dict[JobStatus, int]] = {batch_id: {} for batch_id in batch_ids}
        if not batch_ids:
            return counts
        table = jobs_table
        query = (
            select(table.c.batch_id, table.c.status, func.count())
            .where(table.c.batch_id.in_(list(batch_ids)))
            .group_by(table.c.batch_id, table.c.status)
        )
        async with self.sessions() as session:
            for batch_id, status, count in await session.execute(query):
                counts[batch_id][JobStatus(status)] = int(count)
        return counts

    async def batch_items(self, batch_id: str, *, start: int, limit: int) -> list[Job]:
        """A batch's items from position `start` on, in request order."""
        table = jobs_table
        query = (
            select(table)
            .where(table.c.batch_id == batch_id, table.c.batch_index >= start)
            .order_by(table.c.batch_index)
            .limit(limit)
        )
        async with self.sessions() as session:
            return [job_from_row(row) for row in await session.execute(query)]

    async def batch_item_indexes(self, batch_id: str) -> set[int]:
        """The positions of a batch whose item exists."""
        query = select(jobs_table.c.batch_index).where(jobs_table.c.batch_id == batch_id)
        async with self.sessions() as session:
            return {int(row[0]) for row in await session.execute(query)}

    async def list_webhooks(self, owner_id: str) -> list[Webhook]:
        """The owner's webhooks, oldest first."""
        query = (
            select(webhooks_table)
            .where(webhooks_table.c.owner_id == owner_id)
            .order_by(webhooks_table.c.created_at, webhooks_table.c.webhook_id)
        )
        async with self.reads() as session:
            return [webhook_from_row(row) for row in await session.execute(query)]

    async def delete_webhook(self, owner_id: str, webhook_id: str) -> bool:
        """Deletes one of the owner's webhooks (and its pending deliveries)."""
        async with self.transaction() as uow:
            result = await uow.session.execute(
                delete(webhooks_table).where(
                    webhooks_table.c.webhook_id == webhook_id,
                    webhooks_table.c.owner_id == owner_id,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def routing_table(self) -> RoutingTable:
        """All versions and routes, read in one go."""
        async with self.reads() as session:
            return await read_routing_table(session)

    async def seed_models(
        self, versions: Sequence[ModelVersion], routes: Sequence[ModelRoute], now: datetime
    ) -> tuple[int, int]:
        """Adds the versions and aliases that do not exist yet; never changes existing ones.

        Returns how many versions and aliases were added. Replicas starting together are
        safe: a unique violation means another one seeded first, and the retry adds nothing.
        """
        for attempt in range(2):
            try:
                async with self.transaction() as uow:
                    table = await uow.routing_table()
                    new_versions = [v for v in versions if v.name not in table.versions]
                    for version in new_versions:
                        await uow.insert_version(version, now)
                    new_routes = [r for r in routes if r.alias not in table.routes]
                    for route in new_routes:
                        await uow.replace_route(route)
                return len(new_versions), len(new_routes)
            except Exception as exc:
                if attempt or not is_unique_violation(exc):
                    raise
        raise AssertionError("unreachable")

    async def claim_deliveries(
        self, now: datetime, *, limit: int, lease: timedelta
    ) -> list[DeliveryTask]:
        """Due deliveries, leased for a while so no other replica sends them meanwhile."""
        query = (
            select(
                deliveries_table,
                webhooks_table.c.url,
                webhooks_table.c.secret,
                webhooks_table.c.secret_key_id,
            )
            .join(webhooks_table, webhooks_table.c.webhook_id == deliveries_table.c.webhook_id)
            .where(
                deliveries_table.c.status == DeliveryStatus.PENDING.value,
                deliveries_table.c.next_attempt_at <= now,
            )
            .order_by(deliveries_table.c.next_attempt_at, deliveries_table.c.delivery_id)
            .limit(limit)
            .with_for_update(of=deliveries_table, skip_locked=True)
        )
        async with self.transaction() as uow:
            rows = list(await uow.session.execute(query))
            if rows:
                await uow.session.execute(
                    update(deliveries_table)
                    .where(deliveries_table.c.delivery_id.in_([row.delivery_id for row in rows]))
                    .values(next_attempt_at=now + lease)
                )
        box = self._box()
        return [
            DeliveryTask(
                delivery_from_row(row),
                row.url,
                box.open(Sealed(row.secret_key_id, row.secret), row.webhook_id),
            )
            for row in rows
        ]

    async def next_delivery_due(self) -> datetime | None:
        """When the next pending delivery is due, if any."""
        query = select(func.min(deliveries_table.c.next_attempt_at)).where(
            deliveries_table.c.status == DeliveryStatus.PENDING.value
        )
        async with self.reads() as session:
            value: datetime | None = (await session.execute(query)).scalar_one()
        return value

    async def record_attempt(self, delivery_id: str, result: DeliveryUpdate, now: datetime) -> None:
        """Writes down the outcome of one delivery attempt."""
        async with self.transaction() as uow:
            await uow.session.execute(
                update(deliveries_table)
                .where(deliveries_table.c.delivery_id == delivery_id)
                .values(
                    status=result.status.value,
                    attempts=result.attempts,
                    next_attempt_at=result.next_attempt_at,
                    last_status_code=result.last_status_code,
                    last_error=result.last_error,
                    updated_at=now,
                )
            )

    async def deliveries_for_job(self, job_id: str) -> list[Delivery]:
        """A job's webhook deliveries, oldest first (for operators and tests)."""
        query = (
            select(deliveries_table)
            .where(deliveries_table.c.job_id == job_id)
            .order_by(deliveries_table.c.created_at, deliveries_table.c.delivery_id)
        )
        async with self.reads() as session:
            return [delivery_from_row(row) for row in await session.execute(query)]
