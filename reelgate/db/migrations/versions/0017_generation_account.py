"""generation account: the ledger account that paid each generation (its owner's, or an organization's wallet)

Existing generations were all paid by their owners: account_id is filled with user_id.

Revision ID: 0017_generation_account
Revises: 0016_ledger_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_generation_account"
down_revision: str | None = "0016_ledger_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("account_id", sa.String(40), nullable=True))
    op.execute("UPDATE generations SET account_id = user_id")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.String(40), nullable=False)
    op.create_index("ix_generations_account_status", "generations", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_generations_account_status", table_name="generations")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("account_id")
