"""Job outcomes belong to projects: owner_id now names the job's project (a user's own id is
their personal project, so every existing row already names the right one), and the new
user_id names the user who created the job, backfilled with owner_id (before projects the
owner was the creator); an index on it, with the finish time, for a user's usage.

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

_TABLE = "feedback_job_outcomes"
_INDEX = "ix_feedback_job_outcomes_user_id_finished_at"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("user_id", sa.String(64), nullable=True))
    outcomes = sa.table(_TABLE, sa.column("owner_id", sa.String), sa.column("user_id", sa.String))
    op.execute(outcomes.update().values(user_id=outcomes.c.owner_id))
    with op.batch_alter_table(_TABLE) as batch:
        batch.alter_column("user_id", existing_type=sa.String(64), nullable=False)
    op.create_index(_INDEX, _TABLE, ["user_id", "finished_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("user_id")
