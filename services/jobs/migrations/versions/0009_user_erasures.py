"""User erasures (GDPR) that jobs coordinates: one row per erased user, keyed by the sha256
of the user id; the id itself is kept only while the erasure is pending.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "user_erasures",
        sa.Column("subject_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject_sha256", name=op.f("pk_user_erasures")),
    )
    op.create_index(op.f("ix_user_erasures_next_attempt_at"), "user_erasures", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_erasures_next_attempt_at"), table_name="user_erasures")
    op.drop_table("user_erasures")
