"""Batches: the `batches` table, and each job's batch and position in it.

`jobs.batch_id` and `jobs.batch_index` are NULL for every job outside a batch (all older
jobs). A batch's items are found by (batch_id, batch_index).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# gouache.db.PortableJSON, spelled out so this revision does not change when the library does.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("content_urls", JSON, nullable=False),
        sa.Column("style_urls", JSON, nullable=False),
        sa.Column("requested_model_version", sa.String(length=128), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("lane", sa.String(length=16), nullable=False),
        sa.Column("no_cache", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batches")),
        sa.UniqueConstraint(
            "owner_id", "idempotency_key", name=op.f("uq_batches_owner_id_idempotency_key")
        ),
    )
    op.create_index("ix_batches_owner_created", "batches", ["owner_id", "created_at", "batch_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_batch", "jobs", ["batch_id", "batch_index"])


def downgrade() -> None:
    op.drop_index("ix_jobs_batch", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("batch_index")
        batch.drop_column("batch_id")
    op.drop_index("ix_batches_owner_created", table_name="batches")
    op.drop_table("batches")
