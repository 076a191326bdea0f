"""Several conductors: their service rows, and a lease on each job.

``conductors`` holds each conductor's heartbeat; ``jobs`` gains the
generation and expiry of its conductor's lease. Jobs recorded before
have generation 0 and no expiry: their conductor takes the lease when
it resumes them, and any conductor may take them over once that
conductor's row is down.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

from precache.db.models import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'conductors',
        sa.Column('host', sa.String(255), primary_key=True),
        sa.Column('version', sa.String(64), nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('started_at', UTCDateTime(), nullable=False),
        sa.Column('last_seen', UTCDateTime(), nullable=False),
        mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin',
        mysql_engine='InnoDB')
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('lease_generation', sa.Integer(),
                                   nullable=False, server_default='0'))
        batch.add_column(sa.Column('lease_expires_at', UTCDateTime(),
                                   nullable=True))
    op.create_index('ix_jobs_conductor', 'jobs', ['conductor'])


def downgrade() -> None:
    op.drop_index('ix_jobs_conductor', 'jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lease_expires_at')
        batch.drop_column('lease_generation')
    op.drop_table('conductors')
