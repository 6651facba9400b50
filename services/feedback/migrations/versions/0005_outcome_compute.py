"""Job outcomes keep the worker's compute time and the device kind its model ran on
(outcomes.compute_ms, outcomes.device), for usage in compute- and GPU-seconds (GetUsage,
ExportUsage). 0 and "" for every older row, and for failures and cached results.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.add_column(
            sa.Column("compute_ms", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("device", sa.String(length=16), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.drop_column("device")
        batch.drop_column("compute_ms")
