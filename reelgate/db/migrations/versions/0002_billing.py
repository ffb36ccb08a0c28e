"""billing: payments and the Stripe event inbox

Revision ID: 0002_billing
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import reelgate.db.types

revision: str = '0002_billing'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('stripe_session_id', sa.String(length=255), nullable=False),
    sa.Column('stripe_payment_intent', sa.String(length=255), nullable=True),
    sa.Column('package', sa.String(length=40), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('bonus', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('amount_disputed', sa.BigInteger(), nullable=False),
    sa.Column('credits_reversed', sa.BigInteger(), nullable=False),
    sa.Column('credits_unrecovered', sa.BigInteger(), nullable=False),
    sa.Column('created_at', reelgate.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', reelgate.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', reelgate.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('stripe_session_id', name=op.f('uq_payments_stripe_session_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_stripe_payment_intent'), ['stripe_payment_intent'], unique=False)
        batch_op.create_index('ix_payments_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=80), nullable=False),
    sa.Column('received_at', reelgate.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events'))
    )


def downgrade() -> None:
    op.drop_table('stripe_events')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_user_created')
        batch_op.drop_index(batch_op.f('ix_payments_stripe_payment_intent'))

    op.drop_table('payments')
