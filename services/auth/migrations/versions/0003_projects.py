"""Projects and their members (services/auth/domain/projects.py).

A personal project has no row: its id is its user's, so every row other services stored
before projects (owner_id = a user id) already belongs to the right project.

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
    op.create_table(
        "auth_projects",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_auth_projects")),
    )
    op.create_table(
        "auth_project_members",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["auth_projects.project_id"],
            name=op.f("fk_auth_project_members_project_id_auth_projects"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.user_id"],
            name=op.f("fk_auth_project_members_user_id_auth_users"),
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_auth_project_members")),
    )
    op.create_index(
        "ix_auth_project_members_user_id", "auth_project_members", ["user_id", "project_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_auth_project_members_user_id", table_name="auth_project_members")
    op.drop_table("auth_project_members")
    op.drop_table("auth_projects")
