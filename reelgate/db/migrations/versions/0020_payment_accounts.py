"""payment accounts: the ledger account a purchase credits (the buyer's own, or an organization's wallet)

Existing payments were all bought for their buyers: account_id is filled with user_id.

Revision ID: 0020_payment_accounts
Revises: 0019_member_caps
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_payment_accounts"
down_revision: str | None = "0019_member_caps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("account_id", sa.String(40), nullable=True))
    op.execute("UPDATE payments SET account_id = user_id")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.String(40), nullable=False)
    op.create_index("ix_payments_account_created", "payments", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_payments_account_created", table_name="payments")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("account_id")
