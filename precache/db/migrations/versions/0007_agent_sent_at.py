"""Heartbeats in order: when the agent sent the heartbeat a row holds.

Casts may be received out of order (several conductor threads, several
conductors): an agent's last heartbeat handled after its goodbye would
revive a stopped agent. Rows recorded before have no time; the next
heartbeat of an agent that sends one sets it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

from precache.db.models import UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.add_column(sa.Column('sent_at', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.drop_column('sent_at')
