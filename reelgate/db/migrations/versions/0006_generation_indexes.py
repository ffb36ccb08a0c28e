"""indexes for the in-flight cap and the deadline sweep; joins the feature branches into one head

Revision ID: 0006_generation_indexes
Revises: 0002_billing, 0003_client_webhooks, 0004_procrastinate, 0005_routing
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_generation_indexes"
down_revision: str | Sequence[str] | None = (
    "0002_billing",
    "0003_client_webhooks",
    "0004_procrastinate",
    "0005_routing",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_generations_user_status", "generations", ["user_id", "status"])
    op.create_index("ix_generations_status_deadline", "generations", ["status", "deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_generations_status_deadline", table_name="generations")
    op.drop_index("ix_generations_user_status", table_name="generations")
