"""The agent registry: the latest heartbeat of every agent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

from precache.db.models import UTCDateTime

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'agents',
        sa.Column('host', sa.String(255), primary_key=True),
        sa.Column('cell', sa.String(255), nullable=True),
        sa.Column('version', sa.String(64), nullable=True),
        sa.Column('rpc_version', sa.String(16), nullable=True),
        sa.Column('backends', sa.JSON(), nullable=False),
        sa.Column('stores', sa.JSON(), nullable=False),
        sa.Column('free_bytes', sa.BigInteger(), nullable=True),
        sa.Column('cache_bytes', sa.BigInteger(), nullable=True),
        sa.Column('cache_images', sa.Integer(), nullable=True),
        sa.Column('first_seen', UTCDateTime(), nullable=False),
        sa.Column('last_seen', UTCDateTime(), nullable=False),
    )
    op.create_index('ix_agents_cell', 'agents', ['cell'])
