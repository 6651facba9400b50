"""Job outcomes say whether jobs answered them from the result cache (outcomes.cached).

Such a job ran no model, so version stats leave it out of counts and latencies. False for
every older row.

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
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.add_column(
            sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.drop_column("cached")
