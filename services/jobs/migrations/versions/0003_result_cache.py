"""The result cache: its table, and each job's cache key and whether it was a hit.

`result_cache` holds, per owner and key, the result image of an earlier job that succeeded
for the same request (services.jobs.domain.cache). `jobs.cache_key` is nullable (older jobs
have none and are never stored); `jobs.cached` is false for every older job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "result_cache",
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("result_image_id", sa.String(length=64), nullable=False),
        sa.Column("source_job_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "cache_key", name=op.f("pk_result_cache")),
    )
    op.create_index(
        op.f("ix_result_cache_last_used_at"), "result_cache", ["last_used_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_result_cache_last_used_at"), table_name="result_cache")
    op.drop_table("result_cache")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cached")
        batch.drop_column("cache_key")
