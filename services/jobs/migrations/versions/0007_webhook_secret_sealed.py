"""Webhook secrets encrypted at rest: the id of the key that sealed each one.

`secret` becomes Text (a sealed token is longer than the plaintext) and holds the token;
`secret_key_id` names the key (gouache.secretbox). Rows written before have NULL there and
their plaintext in `secret`: the service seals them when it starts, before it serves
(JobStore.seal_webhook_secrets, which also re-seals rows under a rotated-out key), because
the key lives in the service's settings and not in this migration's environment.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column(
            "secret", existing_type=sa.String(length=256), type_=sa.Text(), nullable=False
        )
        batch.add_column(sa.Column("secret_key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # Sealed secrets cannot go back to plaintext here (no key): refuse rather than corrupt.
    bind = op.get_bind()
    sealed = bind.execute(
        sa.text("SELECT COUNT(*) FROM webhooks WHERE secret_key_id IS NOT NULL")
    ).scalar_one()
    if sealed:
        raise RuntimeError(
            f"{sealed} webhook secrets are encrypted; delete those webhooks before downgrading"
        )
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("secret_key_id")
        batch.alter_column(
            "secret", existing_type=sa.Text(), type_=sa.String(length=256), nullable=False
        )
