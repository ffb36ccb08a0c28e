"""provider requests: the sliding window of recent submits that paces each provider's request rate

Revision ID: 0013_provider_requests
Revises: 0012_model_completions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelgate.db.types

revision: str = "0013_provider_requests"
down_revision: str | None = "0012_model_completions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("sent_at", reelgate.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_requests")),
    )
    op.create_index("ix_provider_requests_provider_sent", "provider_requests", ["provider", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_requests_provider_sent", table_name="provider_requests")
    op.drop_table("provider_requests")
