"""The outbox keeps the W3C trace context each event was written under (outbox.headers).

The relay publishes an event with these headers, so a job's trace continues through NATS.
Nullable: rows written before this revision are published as before, without context.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# gouache.db.PortableJSON, spelled out so this revision does not change when the library does.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column("outbox", sa.Column("headers", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("headers")
