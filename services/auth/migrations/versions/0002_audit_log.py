"""The audit log (services/auth/audit.py): security-relevant actions, append-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "auth_audit_log",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_auth_audit_log")),
    )
    op.create_index("ix_auth_audit_log_at_event_id", "auth_audit_log", ["at", "event_id"])
    op.create_index("ix_auth_audit_log_actor_id", "auth_audit_log", ["actor_id"])


def downgrade() -> None:
    op.drop_index("ix_auth_audit_log_actor_id", table_name="auth_audit_log")
    op.drop_index("ix_auth_audit_log_at_event_id", table_name="auth_audit_log")
    op.drop_table("auth_audit_log")
