"""Initial feedback schema, as create_all made it: job outcomes, ratings and processed events.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_job_outcomes",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_feedback_job_outcomes")),
    )
    op.create_index(
        "ix_feedback_job_outcomes_model_version_finished_at",
        "feedback_job_outcomes",
        ["model_version", "finished_at"],
    )
    op.create_index(
        "ix_feedback_job_outcomes_model_version_status",
        "feedback_job_outcomes",
        ["model_version", "status"],
    )

    op.create_table(
        "feedback_processed_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_feedback_processed_events")),
    )

    op.create_table(
        "feedback_ratings",
        sa.Column("feedback_id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comments", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_feedback_ratings")),
        sa.UniqueConstraint("job_id", name=op.f("uq_feedback_ratings_job_id")),
    )


def downgrade() -> None:
    op.drop_table("feedback_ratings")
    op.drop_table("feedback_processed_events")
    op.drop_table("feedback_job_outcomes")
