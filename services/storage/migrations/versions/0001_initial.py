"""Initial storage schema, as create_all made it: images, upload reservations and styles.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# gouache.db.PortableJSON, spelled out so this revision does not change when the library does.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("image_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_images")),
    )
    op.create_index(op.f("ix_images_owner_id"), "images", ["owner_id"])
    op.create_index(op.f("ix_images_sha256"), "images", ["sha256"])

    op.create_table(
        "upload_reservations",
        sa.Column("image_id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_upload_reservations")),
    )
    op.create_index(
        op.f("ix_upload_reservations_expires_at"), "upload_reservations", ["expires_at"]
    )

    op.create_table(
        "styles",
        sa.Column("style_id", sa.String(length=40), nullable=False),
        sa.Column("image_id", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=512), nullable=False),
        sa.Column("artist", sa.String(length=512), nullable=False),
        sa.Column("year", sa.String(length=64), nullable=False),
        sa.Column("license", sa.Text(), nullable=False),
        sa.Column("provenance", sa.Text(), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("curated", sa.Boolean(), nullable=False),
        sa.Column("catalog_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.image_id"],
            name=op.f("fk_styles_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("style_id", name=op.f("pk_styles")),
        sa.UniqueConstraint("catalog_sha256", name=op.f("uq_styles_catalog_sha256")),
        sa.UniqueConstraint("image_id", name=op.f("uq_styles_image_id")),
    )
    op.create_index("ix_styles_curated_style_id", "styles", ["curated", "style_id"])


def downgrade() -> None:
    op.drop_table("styles")
    op.drop_table("upload_reservations")
    op.drop_table("images")
