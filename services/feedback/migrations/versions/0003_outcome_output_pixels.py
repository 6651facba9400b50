"""Job outcomes keep the result's size in pixels (outcomes.output_pixels), for usage in
megapixels (GetUsage). 0 for every older row, and for failures and cached results.

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
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.add_column(
            sa.Column("output_pixels", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_job_outcomes") as batch:
        batch.drop_column("output_pixels")
