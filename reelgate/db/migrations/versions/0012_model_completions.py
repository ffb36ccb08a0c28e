"""an index for a model's latest completions (the expected time a create answer gives)

Revision ID: 0012_model_completions
Revises: 0011_accounts
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_model_completions"
down_revision: str | None = "0011_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_generations_model_completed", "generations", ["model", "status", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_model_completed", table_name="generations")
