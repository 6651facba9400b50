"""Retention and deletion of images: when each one expires, and how far its removal went.

`images.expires_at` (NULL: kept until deleted; existing rows stay so, since their uploader's
plan was never recorded), `images.removal` and `images.removed_at` (see records.py:
deleting, expiring, expired), and `upload_reservations.plan`, the uploader's plan, which
sets the retention of the image a signed upload stores.

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
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("removal", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_images_expires_at", ["expires_at"])
        batch.create_index("ix_images_removal", ["removal", "removed_at"])
    with op.batch_alter_table("upload_reservations") as batch:
        batch.add_column(sa.Column("plan", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("upload_reservations") as batch:
        batch.drop_column("plan")
    with op.batch_alter_table("images") as batch:
        batch.drop_index("ix_images_removal")
        batch.drop_index("ix_images_expires_at")
        batch.drop_column("removed_at")
        batch.drop_column("removal")
        batch.drop_column("expires_at")
