"""Jobs belong to projects: owner_id now names the owning project (a user's own id is their
personal project, so every existing row already belongs to the right one), and the new
user_id names the user who created the job, backfilled with owner_id (before projects the
owner was the creator).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("user_id", sa.String(64), nullable=True))
    jobs = sa.table("jobs", sa.column("owner_id", sa.String), sa.column("user_id", sa.String))
    op.execute(jobs.update().values(user_id=jobs.c.owner_id))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("user_id", existing_type=sa.String(64), nullable=False)
    op.create_index("ix_jobs_user_id", "jobs", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_user_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("user_id")
