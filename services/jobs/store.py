"""The jobs database: tables of this service only, and the reads and writes on them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import false

from gouache.bus.consumer import mark_processed, processed_events_table
from gouache.bus.outbox import add_event, outbox_table
from gouache.db import (
    Migrations,
    PortableJSON,
    ServiceDatabase,
    UtcDateTime,
    is_unique_violation,
    new_id,
    new_metadata,
)
from gouache.priority import DEFAULT_LANE
from services.jobs.convert import OutgoingEvent, batch_finished_event
from services.jobs.domain import batches as batch_rules
from services.jobs.domain.batches import Batch, BatchStatus
from services.jobs.domain.cache import CacheEntry
from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.paging import PageCursor
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.routing import (
    ModelEndpoint,
    ModelRoute,
    ModelVersion,
    RouteTarget,
    RoutingTable,
)
from services.jobs.domain.webhooks import (
    DeliveryStatus,
    DeliveryUpdate,
    Webhook,
    delivery_payload,
)

metadata = new_metadata()

jobs_table = Table(
    "jobs",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_model_version", String(128), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("content_url", Text, nullable=False),
    Column("content_image_id", String(64), nullable=False),
    Column("style_urls", PortableJSON, nullable=False),
    Column("style_image_ids", PortableJSON, nullable=False),
    Column("params", PortableJSON, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("eta_seconds", Integer, nullable=False),
    Column("progress", Float, nullable=False),
    Column("result_image_id", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("latency_ms", BigInteger, nullable=True),
    # The result cache's key of the request (services.jobs.domain.cache), and whether the
    # job was answered from the cache (migration 0003).
    Column("cache_key", String(64), nullable=True),
    Column("cached", Boolean, nullable=False, server_default=false()),
    Column("lane", String(16), nullable=False, server_default=DEFAULT_LANE),
    # The batch a job is an item of and its position in it; NULL outside batches (0005).
    Column("batch_id", String(40), nullable=True),
    Column("batch_index", Integer, nullable=True),
    # NULL keys are distinct on both SQLite and PostgreSQL: jobs without a key never clash.
    UniqueConstraint("owner_id", "idempotency_key"),
)
Index("ix_jobs_owner_created", jobs_table.c.owner_id, jobs_table.c.created_at, jobs_table.c.job_id)
Index(
    "ix_jobs_owner_status_created",
    jobs_table.c.owner_id,
    jobs_table.c.status,
    jobs_table.c.created_at,
    jobs_table.c.job_id,
)

Index("ix_jobs_batch", jobs_table.c.batch_id, jobs_table.c.batch_index)

# A batch (services.jobs.domain.batches): the request every item was made from; its items
# are the jobs carrying its id. status is "running" until the batch is settled (0005).
batches_table = Table(
    "batches",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("owner_id", String(64), nullable=False),
    Column("status", String(24), nullable=False),
    Column("total", Integer, nullable=False),
    Column("content_urls", PortableJSON, nullable=False),
    Column("style_urls", PortableJSON, nullable=False),
    Column("requested_model_version", String(128), nullable=False),
    Column("params", PortableJSON, nullable=False),
    Column("lane", String(16), nullable=False),
    Column("no_cache", Boolean, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_fingerprint", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    UniqueConstraint("owner_id", "idempotency_key"),
)
Index(
    "ix_batches_owner_created",
    batches_table.c.owner_id,
    batches_table.c.created_at,
    batches_table.c.batch_id,
)

webhooks_table = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(40), primary_key=True),
    Column("owner_id", String(64), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("secret", String(256), nullable=False),
    Column("events", PortableJSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

deliveries_table = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", String(40), primary_key=True),
    Column(
        "webhook_id",
        String(40),
        ForeignKey("webhooks.webhook_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # The job the event is about; for batch.finished, the batch (its batch_id).
    Column("job_id", String(40), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_webhook_deliveries_due", deliveries_table.c.status, deliveries_table.c.next_attempt_at)

versions_table = Table(
    "model_versions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("family", String(32), nullable=False),
    Column("encoder", String(128), nullable=False),
    Column("tile_size", Integer, nullable=False),
    Column("config_json", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

routes_table = Table(
    "model_routes",
    metadata,
    Column("alias", String(128), primary_key=True),
    Column("model_version", String(128), ForeignKey("model_versions.name"), primary_key=True),
    Column("weight", Integer, nullable=False),
    # Keeps the targets in the order the route listed them (weighted choice depends on it).
    Column("position", Integer, nullable=False),
)

# Where a version's own inference server is (the operator sets it); a version without a
# row uses tiling's default inference. Internal: ListModels never shows it.
endpoints_table = Table(
    "model_endpoints",
    metadata,
    Column("model_version", String(128), ForeignKey("model_versions.name"), primary_key=True),
    Column("endpoint", String(253), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The result cache: per owner (the scope; a project id later), the result image of the
# first job that succeeded for a key. last_used_at orders eviction (least recently used).
result_cache_table = Table(
    "result_cache",
    metadata,
    Column("owner_id", String(64), primary_key=True),
    Column("cache_key", String(64), primary_key=True),
    Column("model_version", String(128), nullable=False),
    Column("result_image_id", String(64), nullable=False),
    Column("source_job_id", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_hit_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=False, index=True),
    Column("hits", BigInteger, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery as stored."""

    delivery_id: str
    webhook_id: str
    job_id: str
    event: str
    payload: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None


@dataclass(frozen=True)
class DeliveryTask:
    """A due delivery with what it takes to send it."""

    delivery: Delivery
    url: str
    secret: str


def _job(row: Row[Any]) -> Job:
    return Job(
        job_id=row.job_id,
        owner_id=row.owner_id,
        status=JobStatus(row.status),
        requested_model_version=row.requested_model_version,
        model_version=row.model_version,
        content_url=row.content_url,
        content_image_id=row.content_image_id,
        style_urls=tuple(row.style_urls),
        style_image_ids=tuple(row.style_image_ids),
        params=StylizeParams.from_dict(row.params),
        created_at=row.created_at,
        updated_at=row.updated_at,
        idempotency_key=row.idempotency_key,
        request_fingerprint=row.request_fingerprint,
        eta_seconds=row.eta_seconds,
        progress=row.progress,
        result_image_id=row.result_image_id,
        error=row.error,
        error_code=row.error_code,
        started_at=row.started_at,
        finished_at=row.finished_at,
        latency_ms=row.latency_ms,
        cache_key=row.cache_key,
        cached=bool(row.cached),
        lane=row.lane,
        batch_id=row.batch_id,
        batch_index=row.batch_index,
    )


def _job_values(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "owner_id": job.owner_id,
        "status": job.status.value,
        "requested_model_version": job.requested_model_version,
        "model_version": job.model_version,
        "content_url": job.content_url,
        "content_image_id": job.content_image_id,
        "style_urls": list(job.style_urls),
        "style_image_ids": list(job.style_image_ids),
        "params": job.params.to_dict(),
        "idempotency_key": job.idempotency_key,
        "request_fingerprint": job.request_fingerprint,
        "eta_seconds": job.eta_seconds,
        "progress": job.progress,
        "result_image_id": job.result_image_id,
        "error": job.error,
        "error_code": job.error_code,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "latency_ms": job.latency_ms,
        "cache_key": job.cache_key,
        "cached": job.cached,
        "lane": job.lane,
        "batch_id": job.batch_id,
        "batch_index": job.batch_index,
    }


# What a state change may alter; the rest of a job is fixed at creation.
_MUTABLE = (
    "status",
    "progress",
    "result_image_id",
    "error",
    "error_code",
    "updated_at",
    "started_at",
    "finished_at",
    "latency_ms",
)


def _cache_entry(row: Row[Any]) -> CacheEntry:
    return CacheEntry(
        key=row.cache_key,
        owner_id=row.owner_id,
        model_version=row.model_version,
        result_image_id=row.result_image_id,
        source_job_id=row.source_job_id,
        created_at=row.created_at,
        last_hit_at=row.last_hit_at,
        hits=int(row.hits),
    )


def _upsert_entry(dialect: str, entry: CacheEntry) -> Any:
    """Insert the entry, or replace the answer stored under its owner and key."""
    values = {
        "owner_id": entry.owner_id,
        "cache_key": entry.key,
        "model_version": entry.model_version,
        "result_image_id": entry.result_image_id,
        "source_job_id": entry.source_job_id,
        "created_at": entry.created_at,
        "last_hit_at": None,
        "last_used_at": entry.created_at,
        "hits": 0,
    }
    replaced = {k: v for k, v in values.items() if k not in ("owner_id", "cache_key")}
    if dialect == "postgresql":
        pg = postgresql.insert(result_cache_table).values(**values)
        return pg.on_conflict_do_update(index_elements=["owner_id", "cache_key"], set_=replaced)
    if dialect == "sqlite":
        lite = sqlite.insert(result_cache_table).values(**values)
        return lite.on_conflict_do_update(index_elements=["owner_id", "cache_key"], set_=replaced)
    raise ValueError(f"the result cache supports postgresql and sqlite, not {dialect}")


def _batch(row: Row[Any]) -> Batch:
    return Batch(
        batch_id=row.batch_id,
        owner_id=row.owner_id,
        status=BatchStatus(row.status),
        total=row.total,
        content_urls=tuple(row.content_urls),
        style_urls=tuple(row.style_urls),
        requested_model_version=row.requested_model_version,
        params=StylizeParams.from_dict(row.params),
        lane=row.lane,
        no_cache=bool(row.no_cache),
        created_at=row.created_at,
        updated_at=row.updated_at,
        idempotency_key=row.idempotency_key,
        request_fingerprint=row.request_fingerprint,
        finished_at=row.finished_at,
    )


def _job_counts(rows: Any) -> dict[JobStatus, int]:
    return {JobStatus(row[0]): int(row[1]) for row in rows}


def _webhook(row: Row[Any]) -> Webhook:
    return Webhook(
        webhook_id=row.webhook_id,
        owner_id=row.owner_id,
        url=row.url,
        secret=row.secret,
        events=tuple(row.events),
        created_at=row.created_at,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id,
        webhook_id=row.webhook_id,
        job_id=row.job_id,
        event=row.event,
        payload=row.payload,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
    )


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        family=row.family,
        encoder=row.encoder,
        tile_size=row.tile_size,
        config=json.loads(row.config_json),
        description=row.description,
        created_at=row.created_at,
    )


class UnitOfWork:
    """One transaction: a state change, its outbox events and webhook deliveries together."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def job_for_update(self, job_id: str) -> Job | None:
        """The job, locked until commit (PostgreSQL; SQLite transactions are exclusive)."""
        query = select(jobs_table).where(jobs_table.c.job_id == job_id).with_for_update()
        row = (await self.session.execute(query)).first()
        return None if row is None else _job(row)

    async def insert_job(self, job: Job) -> None:
        """Adds a new job (a taken idempotency key raises a unique violation)."""
        await self.session.execute(insert(jobs_table).values(**_job_values(job)))

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
        values = _job_values(job)
        await self.session.execute(
            update(jobs_table)
            .where(jobs_table.c.job_id == job.job_id)
            .values({name: values[name] for name in _MUTABLE})
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
        for webhook in (_webhook(row) for row in rows):
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
        return await _routing_table(self.session)

    async def batch_for_update(self, batch_id: str) -> Batch | None:
        """The batch, locked until commit: item completions settle it one at a time."""
        query = select(batches_table).where(batches_table.c.batch_id == batch_id)
        row = (await self.session.execute(query.with_for_update())).first()
        return None if row is None else _batch(row)

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
        return _job_counts(await self.session.execute(query.group_by(status)))

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
        return [_job(row) for row in await self.session.execute(query)]

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
        for webhook in (_webhook(row) for row in rows):
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
        """Stores (or replaces) an answer, then keeps the cache within its bounds.

        Drops entries older than stale_before, then the least recently used ones beyond
        max_entries. Returns how many entries each of the two dropped.
        """
        dialect = self.session.get_bind().dialect.name
        await self.session.execute(_upsert_entry(dialect, entry))
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
        """Adds a webhook."""
        await self.session.execute(
            insert(webhooks_table).values(
                webhook_id=webhook.webhook_id,
                owner_id=webhook.owner_id,
                url=webhook.url,
                secret=webhook.secret,
                events=list(webhook.events),
                created_at=webhook.created_at,
            )
        )


async def _routing_table(session: AsyncSession) -> RoutingTable:
    versions = {
        row.name: _version(row)
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


class JobStore(ServiceDatabase):
    """The jobs service's database; each method is one short transaction."""

    migrations = Migrations("jobs", Path(__file__).with_name("migrations"), metadata)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A unit of work that commits on success and rolls back on any error."""
        async with self.sessions.begin() as session:
            yield UnitOfWork(session)

    async def get_job(self, job_id: str) -> Job | None:
        """A job by id, whoever owns it."""
        async with self.reads() as session:
            row = (
                await session.execute(select(jobs_table).where(jobs_table.c.job_id == job_id))
            ).first()
        return None if row is None else _job(row)

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
        return None if row is None else _job(row)

    async def create_job(
        self,
        job: Job,
        event: OutgoingEvent,
        *,
        key_expired_before: datetime,
        cache_hit: CacheEntry | None = None,
        now: datetime | None = None,
    ) -> int | None:
        """Stores a new job and its event together; None if its idempotency key was taken.

        A pending job goes with its JobCreated event. A job answered from the cache
        (`cache_hit`, the job already succeeded) goes with its JobSucceeded event, its
        webhook deliveries and the entry's hit count, all in one transaction. Returns how
        many webhook deliveries were queued. When another request took the job's
        idempotency key first (the unique constraint decides races) nothing is written.
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
                if job.idempotency_key:
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
        return None if row is None else _cache_entry(row)

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
            return [_job(row) for row in await session.execute(query)]

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
        return None if row is None else _batch(row)

    async def find_batch_by_key(self, owner_id: str, key: str) -> Batch | None:
        """The owner's batch created with an idempotency key, if any."""
        table = batches_table
        query = select(table).where(table.c.owner_id == owner_id, table.c.idempotency_key == key)
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        return None if row is None else _batch(row)

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
            return [_batch(row) for row in await session.execute(query)]

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
            return [_job(row) for row in await session.execute(query)]

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
            return [_webhook(row) for row in await session.execute(query)]

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
            return await _routing_table(session)

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
            select(deliveries_table, webhooks_table.c.url, webhooks_table.c.secret)
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
        return [DeliveryTask(_delivery(row), row.url, row.secret) for row in rows]

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
            return [_delivery(row) for row in await session.execute(query)]
