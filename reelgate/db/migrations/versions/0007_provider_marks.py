"""provider marks: degraded providers shared between processes

Revision ID: 0007_provider_marks
Revises: 0006_generation_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelgate.db.types

revision: str = "0007_provider_marks"
down_revision: str | None = "0006_generation_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_marks",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", reelgate.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_marks")),
    )


def downgrade() -> None:
    op.drop_table("provider_marks")
