"""organization projects: a project may belong to an organization (a team campaign its members file into)

Existing projects are their users' own: organization_id stays NULL.

Revision ID: 0021_organization_projects
Revises: 0020_payment_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_organization_projects"
down_revision: str | None = "0020_payment_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organization_id", sa.String(40), nullable=True))
        batch_op.create_foreign_key(
            "fk_projects_organization_id_organizations", "organizations", ["organization_id"], ["id"]
        )
        batch_op.create_index("ix_projects_organization_id", ["organization_id"])


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index("ix_projects_organization_id")
        batch_op.drop_constraint("fk_projects_organization_id_organizations", type_="foreignkey")
        batch_op.drop_column("organization_id")
