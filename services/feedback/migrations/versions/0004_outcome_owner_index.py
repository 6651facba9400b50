"""An index on job outcomes by owner and finish time, for one user's usage (GetUsage).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(
        "ix_feedback_job_outcomes_owner_id_finished_at",
        "feedback_job_outcomes",
        ["owner_id", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_feedback_job_outcomes_owner_id_finished_at", table_name="feedback_job_outcomes"
    )
