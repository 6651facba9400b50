"""The jobs service's tables (its Alembic migrations build the same schema)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import false

from gouache.bus.idempotency import processed_events_table
from gouache.bus.outbox import outbox_table
from gouache.db import (
    PortableJSON,
    UtcDateTime,
    new_metadata,
)
from gouache.priority import DEFAULT_LANE

metadata = new_metadata()

jobs_table = Table(
    "jobs",
    metadata,
    Column("job_id", String(40), primary_key=True),
    # The project the job belongs to (a user's own id: their personal project), and the
    # user who created it (migration 0010, backfilled with owner_id).
    Column("owner_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
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
    # The result image's size as its worker reported it; NULL when unknown (0006).
    Column("output_width", Integer, nullable=True),
    Column("output_height", Integer, nullable=True),
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
# A user's erasure finds the jobs they created in shared projects (migration 0010).
Index("ix_jobs_user_id", jobs_table.c.user_id)

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
    # Sealed (gouache.secretbox): the token, and the id of the key that sealed it; NULL
    # only on a row from before 0007 until the service's start seals it.
    Column("secret", Text, nullable=False),
    Column("secret_key_id", String(16), nullable=True),
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
