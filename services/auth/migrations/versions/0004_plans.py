"""Plans of users and shared projects (services/auth/domain/plans.py).

Every existing user and project starts on the free plan, which is what their tokens
carried before (no `plan` claim means free).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("auth_users", "auth_projects")


def upgrade() -> None:
    for table in _TABLES:
        # batch mode: SQLite cannot add a NOT NULL column with ALTER TABLE alone everywhere.
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("plan", sa.String(length=16), nullable=False, server_default="free")
            )


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("plan")
