"""the user's library: favourites, deleted generations kept as tombstones, share links, storage quotas

Revision ID: 0009_library
Revises: 0008_in_flight_counter
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from reelgate.db.types import UTCDateTime

revision: str = "0009_library"
down_revision: str | None = "0008_in_flight_counter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("favorite", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        batch.add_column(sa.Column("deleted_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("media_removed_at", UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "share_links",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("generation_id", sa.String(40), nullable=False),
        sa.Column("show_prompt", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_share_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_share_links_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_links")),
    )
    op.create_index(op.f("ix_share_links_user_id"), "share_links", ["user_id"])
    op.create_index(op.f("ix_share_links_generation_id"), "share_links", ["generation_id"])
    op.create_table(
        "storage_quotas",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("quota_mb", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_storage_quotas_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_storage_quotas")),
    )


def downgrade() -> None:
    op.drop_table("storage_quotas")
    op.drop_index(op.f("ix_share_links_generation_id"), table_name="share_links")
    op.drop_index(op.f("ix_share_links_user_id"), table_name="share_links")
    op.drop_table("share_links")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("media_removed_at")
        batch.drop_column("deleted_at")
        batch.drop_column("favorite")
