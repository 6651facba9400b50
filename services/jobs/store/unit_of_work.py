"""One transaction's reads and writes: the state changes, their events and deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gouache.bus.idempotency import mark_processed
from gouache.bus.outbox import add_event
from gouache.db import (
    new_id,
)
from gouache.secretbox import SecretBox
from services.jobs.convert import OutgoingEvent, batch_finished_event
from services.jobs.domain import batches as batch_rules
from services.jobs.domain.batches import Batch
from services.jobs.domain.cache import CacheEntry
from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.routing import (
    ModelEndpoint,
    ModelRoute,
    ModelVersion,
    RouteTarget,
    RoutingTable,
)
from services.jobs.domain.webhooks import (
    DeliveryStatus,
    Webhook,
    delivery_payload,
)
from services.jobs.store.rows import (
    MUTABLE_JOB_FIELDS,
    batch_from_row,
    job_counts,
    job_from_row,
    job_values,
    upsert_cache_entry,
    version_from_row,
    webhook_from_row,
)
from services.jobs.store.tables import (
    batches_table,
    deliveries_table,
    endpoints_table,
    jobs_table,
    outbox,
    processed_events,
    result_cache_table,
    routes_table,
    versions_table,
    webhooks_table,
)


class UnitOfWork:
    """One transaction: a state change, its outbox events and webhook deliveries together."""

    def __init__(self, session: AsyncSession, secrets: SecretBox | None = None) -> None:
        self.session = session
        # Seals webhook secrets; a store built without keys cannot add webhooks.
        self._secrets = secrets

    async def job_for_update(self, job_id: str) -> Job | None:
        """The job, locked until commit (PostgreSQL; SQLite transactions are exclusive)."""
        query = select(jobs_table).where(jobs_table.c.job_id == job_id).with_for_update()
        row = (await self.session.execute(query)).first()
        return None if row is None else job_from_row(row)

    async def insert_job(self, job: Job) -> None:
        """Adds a new job (a taken idempotency key raises a unique violation)."""
        await self.session.execute(insert(jobs_table), job_values(job))

    async def release_expired_key(self, owner_id: str, key: str, before: datetime) -> None:
        """Frees an idempotency key whose job is older than the key's lifetime."""
        await self.session.execute(
            update(jobs_table)
            .where(
                jobs_table.c.owner_id == owner_id,
                jobs_table.c.idempotency_key == key,
                jobs_table.c.created_at < before,
            )
            .values(idempotency_key=None)
        )

    async def save_job(self, job: Job) -> None:
        """Writes the fields a state change may alter."""
        values = job_values(job)
        await self.session.execute(
            update(jobs_table)
            .where(jobs_table.c.job_id == job.job_id)
            .values({name: values[name] for name in MUTABLE_JOB_FIELDS})
        )

    async def add_event(self, event: OutgoingEvent) -> None:
        """Stores an event in the outbox; it is published only if this transaction commits."""
        await add_event(self.session, outbox, event.subject, event.message, event.event_id)

    async def mark_processed(self, event_id: str) -> bool:
        """Records a consumed event id; False if it was applied before."""
        return await mark_processed(self.session, processed_events, event_id)

    async def enqueue_webhooks(self, job: Job, event: str, now: datetime) -> int:
        """A pending delivery for each of the owner's webhooks subscribed to event."""
        rows = await self.session.execute(
            select(webhooks_table).where(webhooks_table.c.owner_id == job.owner_id)
        )
        count = 0
        for webhook in (webhook_from_row(row) for row in rows):
            if not webhook.wants(event):
                continue
            delivery_id = new_id("dlv")
            await self.session.execute(
                insert(deliveries_table).values(
                    delivery_id=delivery_id,
                    webhook_id=webhook.webhook_id,
                    job_id=job.job_id,
                    event=event,
                    payload=delivery_payload(delivery_id, event, now, job),
                    status=DeliveryStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            count += 1
        return count

    async def routing_table(self) -> RoutingTable:
        """All versions and routes."""
        return await read_routing_table(self.session)

    async def batch_for_update(self, batch_id: str) -> Batch | None:
        """The batch, locked until commit: item completions settle it one at a time."""
        query = select(batches_table).where(batches_table.c.batch_id == batch_id)
        row = (await self.session.execute(query.with_for_update())).first()
        return None if row is None else batch_from_row(row)

    async def insert_batch(self, batch: Batch, key_expired_before: datetime) -> None:
        """Adds a new batch (a taken idempotency key raises a unique violation)."""
        table = batches_table
        if batch.idempotency_key:
            await self.session.execute(
                update(table)
                .where(
                    table.c.owner_id == batch.owner_id,
                    table.c.idempotency_key == batch.idempotency_key,
                    table.c.created_at < key_expired_before,
                )
                .values(idempotency_key=None)
            )
        await self.session.execute(
            insert(table).values(
                batch_id=batch.batch_id,
                owner_id=batch.owner_id,
                status=batch.status.value,
                total=batch.total,
                content_urls=list(batch.content_urls),
                style_urls=list(batch.style_urls),
                requested_model_version=batch.requested_model_version,
                params=batch.params.to_dict(),
                lane=batch.lane,
                no_cache=batch.no_cache,
                idempotency_key=batch.idempotency_key,
                request_fingerprint=batch.request_fingerprint,
                created_at=batch.created_at,
                updated_at=batch.updated_at,
                finished_at=batch.finished_at,
            )
        )

    async def save_batch(self, batch: Batch) -> None:
        """Writes a batch's status change."""
        await self.session.execute(
            update(batches_table)
            .where(batches_table.c.batch_id == batch.batch_id)
            .values(
                status=batch.status.value,
                updated_at=batch.updated_at,
                finished_at=batch.finished_at,
            )
        )

    async def batch_counts(self, batch_id: str) -> dict[JobStatus, int]:
        """How many of a batch's items are in each status, as this transaction sees them."""
        status = jobs_table.c.status
        query = select(status, func.count()).where(jobs_table.c.batch_id == batch_id)
        return job_counts(await self.session.execute(query.group_by(status)))

    async def unfinished_items_for_update(
        self, batch_id: str, *, skip_locked: bool = False
    ) -> list[Job]:
        """A batch's pending and running items, locked (in id order) until commit.

        skip_locked leaves out the items another transaction holds (PostgreSQL).
        """
        unfinished = [s.value for s in JobStatus if not s.is_final]
        query = (
            select(jobs_table)
            .where(jobs_table.c.batch_id == batch_id, jobs_table.c.status.in_(unfinished))
            .order_by(jobs_table.c.job_id)
            .with_for_update(skip_locked=skip_locked)
        )
        return [job_from_row(row) for row in await self.session.execute(query)]

    async def unfinished_item_ids(self, batch_id: str) -> set[str]:
        """The ids of a batch's pending and running items, without locking them."""
        unfinished = [s.value for s in JobStatus if not s.is_final]
        query = select(jobs_table.c.job_id).where(
            jobs_table.c.batch_id == batch_id, jobs_table.c.status.in_(unfinished)
        )
        return {row[0] for row in await self.session.execute(query)}

    async def settle_batch(self, batch_id: str, now: datetime) -> int:
        """Ends the batch if its last item just became final; returns the deliveries queued.

        Call it in the transaction that made an item final, after saving the item. The
        batch's row lock makes concurrent item completions count one after the other, so
        exactly one of them sees every item final and ends the batch.
        """
        batch = await self.batch_for_update(batch_id)
        if batch is None:
            return 0
        counts = await self.batch_counts(batch_id)
        settled = batch_rules.settle(batch, counts, now)
        if settled is None:
            return 0
        await self.save_batch(settled)
        return await self.record_batch_finished(settled, counts, now)

    async def record_batch_finished(
        self, batch: Batch, counts: dict[JobStatus, int], now: datetime
    ) -> int:
        """The BatchFinished outbox event and the batch.finished webhook deliveries of a
        batch that just ended, in its transaction; returns the deliveries queued."""
        await self.add_event(batch_finished_event(batch, counts))
        return await self.enqueue_batch_webhooks(batch, counts, now)

    async def enqueue_batch_webhooks(
        self, batch: Batch, counts: dict[JobStatus, int], now: datetime
    ) -> int:
        """A pending batch.finished delivery for each of the owner's subscribed webhooks."""
        event = batch_rules.BATCH_FINISHED_EVENT
        rows = await self.session.execute(
            select(webhooks_table).where(webhooks_table.c.owner_id == batch.owner_id)
        )
        count = 0
        for webhook in (webhook_from_row(row) for row in rows):
            if not webhook.wants(event):
                continue
            delivery_id = new_id("dlv")
            await self.session.execute(
                insert(deliveries_table).values(
                    delivery_id=delivery_id,
                    webhook_id=webhook.webhook_id,
                    job_id=batch.batch_id,
                    event=event,
                    payload=batch_rules.finished_payload(delivery_id, now, batch, counts),
                    status=DeliveryStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            count += 1
        return count

    async def record_cache_hit(self, entry: CacheEntry, now: datetime) -> bool:
        """Counts a hit on an entry that still holds the same answer; False if it changed."""
        result = await self.session.execute(
            update(result_cache_table)
            .where(
                result_cache_table.c.owner_id == entry.owner_id,
                result_cache_table.c.cache_key == entry.key,
                result_cache_table.c.result_image_id == entry.result_image_id,
            )
            .values(hits=result_cache_table.c.hits + 1, last_hit_at=now, last_used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def remember_result(
        self, entry: CacheEntry, *, max_entries: int, stale_before: datetime
    ) -> tuple[int, int]:
        """Stores (or replaces) an answer, then keeps the cache within its bounds
        (`store_cache_entry`, then `trim_cache`)."""
        await self.store_cache_entry(entry)
        return await self.trim_cache(max_entries=max_entries, stale_before=stale_before)

    async def store_cache_entry(self, entry: CacheEntry) -> None:
        """Stores (or replaces) an answer."""
        dialect = self.session.get_bind().dialect.name
        await self.session.execute(upsert_cache_entry(dialect, entry))

    async def trim_cache(self, *, max_entries: int, stale_before: datetime) -> tuple[int, int]:
        """Drops entries older than stale_before, then the least recently used ones beyond
        max_entries. Returns how many entries each of the two dropped.

        Both read the whole table (a count, a scan of created_at): the caller runs this
        now and then, not with every entry stored.
        """
        table = result_cache_table
        evicted = await self.session.execute(delete(table).where(table.c.created_at < stale_before))
        expired = int(getattr(evicted, "rowcount", 0) or 0)
        count = int(
            (await self.session.execute(select(func.count()).select_from(table))).scalar_one()
        )
        excess = count - max_entries
        if excess > 0:
            oldest = (
                select(table.c.owner_id, table.c.cache_key)
                .order_by(table.c.last_used_at, table.c.owner_id, table.c.cache_key)
                .limit(excess)
            )
            victims = [(row.owner_id, row.cache_key) for row in await self.session.execute(oldest)]
            for owner_id, key in victims:
                await self.session.execute(
                    delete(table).where(table.c.owner_id == owner_id, table.c.cache_key == key)
                )
            return expired, len(victims)
        return expired, 0

    async def insert_version(self, version: ModelVersion, now: datetime) -> None:
        """Registers a version."""
        await self.session.execute(
            insert(versions_table).values(
                name=version.name,
                family=version.family,
                encoder=version.encoder,
                tile_size=version.tile_size,
                config_json=version.config_json,
                description=version.description,
                created_at=now,
            )
        )

    async def replace_route(self, route: ModelRoute) -> None:
        """Sets an alias's targets, replacing the previous ones."""
        await self.session.execute(delete(routes_table).where(routes_table.c.alias == route.alias))
        await self.session.execute(
            insert(routes_table),
            [
                {
                    "alias": route.alias,
                    "model_version": target.model_version,
                    "weight": target.weight,
                    "position": position,
                }
                for position, target in enumerate(route.targets)
            ],
        )

    async def replace_endpoint(self, endpoint: ModelEndpoint, now: datetime) -> None:
        """Sets a version's inference endpoint; "" removes it (the default inference)."""
        await self.session.execute(
            delete(endpoints_table).where(endpoints_table.c.model_version == endpoint.model_version)
        )
        if endpoint.endpoint:
            await self.session.execute(
                insert(endpoints_table).values(
                    model_version=endpoint.model_version,
                    endpoint=endpoint.endpoint,
                    updated_at=now,
                )
            )

    async def count_webhooks(self, owner_id: str) -> int:
        """How many webhooks a user has."""
        query = select(func.count()).where(webhooks_table.c.owner_id == owner_id)
        return int((await self.session.execute(query)).scalar_one())

    async def insert_webhook(self, webhook: Webhook) -> None:
        """Adds a webhook, its secret sealed under the first key (bound to its id)."""
        if self._secrets is None:
            raise RuntimeError("this JobStore has no secret keys: it cannot store webhooks")
        sealed = self._secrets.seal(webhook.secret, webhook.webhook_id)
        await self.session.execute(
            insert(webhooks_table).values(
                webhook_id=webhook.webhook_id,
                owner_id=webhook.owner_id,
                url=webhook.url,
                secret=sealed.token,
                secret_key_id=sealed.key_id,
                events=list(webhook.events),
                created_at=webhook.created_at,
            )
        )


async def read_routing_table(session: AsyncSession) -> RoutingTable:
    versions = {
        row.name: version_from_row(row)
        for row in await session.execute(select(versions_table).order_by(versions_table.c.name))
    }
    grouped: dict[str, list[RouteTarget]] = {}
    rows = await session.execute(
        select(routes_table).order_by(routes_table.c.alias, routes_table.c.position)
    )
    for row in rows:
        grouped.setdefault(row.alias, []).append(RouteTarget(row.model_version, row.weight))
    routes = {alias: ModelRoute(alias, tuple(targets)) for alias, targets in grouped.items()}
    endpoints = {
        row.model_version: row.endpoint
        for row in await session.execute(
            select(endpoints_table.c.model_version, endpoints_table.c.endpoint)
        )
    }
    return RoutingTable(versions=versions, routes=routes, endpoints=endpoints)
