"""organization keys: an API key may act as an organization (made by one of its owners or admins)

Revision ID: 0018_organization_keys
Revises: 0017_generation_account
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_organization_keys"
down_revision: str | None = "0017_generation_account"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization_id", sa.String(40), nullable=True))
        batch_op.create_foreign_key(
            "fk_api_keys_organization_id_organizations",
            "organizations",
            ["organization_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index("ix_api_keys_organization_id", ["organization_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_organization_id")
        batch_op.drop_constraint("fk_api_keys_organization_id_organizations", type_="foreignkey")
        batch_op.drop_column("organization_id")
