"""member caps: what a member may spend from an organization's wallet per day and per month

Revision ID: 0019_member_caps
Revises: 0018_organization_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_member_caps"
down_revision: str | None = "0018_organization_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("organization_members", sa.Column("daily_cap", sa.BigInteger(), nullable=True))
    op.add_column("organization_members", sa.Column("monthly_cap", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organization_members", schema=None) as batch_op:
        batch_op.drop_column("monthly_cap")
        batch_op.drop_column("daily_cap")
