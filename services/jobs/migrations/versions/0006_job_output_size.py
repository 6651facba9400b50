"""Each job's result size in pixels, as its worker reported it (for usage in megapixels);
NULL for older jobs and for results answered from the cache.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("output_width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("output_height", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("output_height")
        batch.drop_column("output_width")
