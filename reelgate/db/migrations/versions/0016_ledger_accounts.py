"""ledger accounts: a balance and its entries belong to an account id, a user's or an organization's

The foreign keys from balances and ledger_entries to users are dropped, so an organization's wallet is an
account of the same ledger. Every existing row keeps its user id, which is that user's account id: balances are
unchanged.

Revision ID: 0016_ledger_accounts
Revises: 0015_organizations
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_ledger_accounts"
down_revision: str | None = "0015_organizations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_balances_user_id_users", type_="foreignkey")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_ledger_entries_user_id_users", type_="foreignkey")


def downgrade() -> None:
    # Organization accounts have no user: their rows go before the foreign keys come back.
    op.execute("DELETE FROM ledger_entries WHERE user_id NOT IN (SELECT id FROM users)")
    op.execute("DELETE FROM balances WHERE user_id NOT IN (SELECT id FROM users)")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_ledger_entries_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("balances", schema=None) as batch_op:
        batch_op.create_foreign_key("fk_balances_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE")
