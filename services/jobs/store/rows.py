"""Rows to domain objects and back, and the store's own records (webhook deliveries)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.jobs.domain.batches import Batch, BatchStatus
from services.jobs.domain.cache import CacheEntry
from services.jobs.domain.jobs import Job, JobStatus
from services.jobs.domain.requests import StylizeParams
from services.jobs.domain.routing import (
    ModelVersion,
)
from services.jobs.domain.webhooks import (
    DeliveryStatus,
    Webhook,
)
from services.jobs.store.tables import (
    result_cache_table,
)


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


def job_from_row(row: Row[Any]) -> Job:
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
        output_width=row.output_width,
        output_height=row.output_height,
        user_id=row.user_id,
    )


def job_values(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "owner_id": job.owner_id,
        "user_id": job.user_id,
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
        "output_width": job.output_width,
        "output_height": job.output_height,
    }


# What a state change may alter; the rest of a job is fixed at creation.
MUTABLE_JOB_FIELDS = (
    "status",
    "progress",
    "result_image_id",
    "error",
    "error_code",
    "updated_at",
    "started_at",
    "finished_at",
    "latency_ms",
    "output_width",
    "output_height",
)


def cache_entry_from_row(row: Row[Any]) -> CacheEntry:
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


def upsert_cache_entry(dialect: str, entry: CacheEntry) -> Any:
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


def batch_from_row(row: Row[Any]) -> Batch:
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


def job_counts(rows: Any) -> dict[JobStatus, int]:
    return {JobStatus(row[0]): int(row[1]) for row in rows}


def webhook_from_row(row: Row[Any]) -> Webhook:
    """A webhook without its secret: it stays sealed; only JobStore.claim_deliveries opens it."""
    return Webhook(
        webhook_id=row.webhook_id,
        owner_id=row.owner_id,
        url=row.url,
        secret="",
        events=tuple(row.events),
        created_at=row.created_at,
    )


def delivery_from_row(row: Row[Any]) -> Delivery:
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


def version_from_row(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        family=row.family,
        encoder=row.encoder,
        tile_size=row.tile_size,
        config=json.loads(row.config_json),
        description=row.description,
        created_at=row.created_at,
    )
