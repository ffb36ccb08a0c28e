"""Join the email and library migrations, written side by side on 0008.

Revision ID: 0010_merge
Revises: 0009_mail, 0009_library
"""

from __future__ import annotations

revision = "0010_merge"
down_revision = ("0009_mail", "0009_library")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: both parents only add their own tables and columns."""


def downgrade() -> None:
    """Nothing to undo here."""
