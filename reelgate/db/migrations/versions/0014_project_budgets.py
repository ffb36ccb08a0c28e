"""project budgets: an optional cap in credits on what a project's generations may hold and capture

Revision ID: 0014_project_budgets
Revises: 0013_provider_requests
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_project_budgets"
down_revision: str | None = "0013_provider_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing projects have no budget. SQLite adds a nullable column in place.
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("budget_credits", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("budget_credits")
