"""Built-in schedules: the latest claimed run of each.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

from precache.db.models import UTCDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'schedule_runs',
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('occurrence', UTCDateTime(), nullable=True),
        sa.Column('job_id', sa.String(36), nullable=True),
        sa.Column('conductor', sa.String(255), nullable=True),
        sa.Column('claimed_at', UTCDateTime(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('schedule_runs')
