"""MySQL/MariaDB: microsecond timestamps, double seconds, binary collation;
named locks.

Stores created on MySQL before this kept whole-second timestamps (jobs
of one second tied in newest-first order), single-precision seconds and
case-insensitive strings; that part leaves SQLite and PostgreSQL as they
are. ``store_locks`` is where MySQL transactions take named locks (the
table exists everywhere; only MySQL uses it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Table: its timestamp columns, each with whether it may be NULL.
TIMESTAMPS = {
    'jobs': {'created_at': False, 'started_at': True, 'finished_at': True},
    'host_results': {'started_at': True, 'finished_at': True},
    'agents': {'first_seen': False, 'last_seen': False, 'stopped_at': True},
    'schedule_runs': {'occurrence': True, 'claimed_at': True},
}


def upgrade() -> None:
    op.create_table(
        'store_locks',
        sa.Column('name', sa.String(255), primary_key=True),
        sa.Column('taken', sa.BigInteger(), nullable=False),
        mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin',
        mysql_engine='InnoDB')
    if op.get_bind().dialect.name not in ('mysql', 'mariadb'):
        return
    # NOTE: jobs.id and host_results.job_id change collation one table
    # at a time; MySQL refuses that under the foreign key between them.
    keys = [key['name'] for key in
            sa.inspect(op.get_bind()).get_foreign_keys('host_results')
            if key['name']]
    for key in keys:
        op.drop_constraint(key, 'host_results', type_='foreignkey')
    for table, columns in TIMESTAMPS.items():
        changes = ['CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin']
        changes += ['MODIFY %s DATETIME(6) %s' % (
            column, 'NULL' if nullable else 'NOT NULL')
            for column, nullable in columns.items()]
        if table == 'host_results':
            changes.append('MODIFY seconds DOUBLE NOT NULL')
        op.execute('ALTER TABLE %s %s' % (table, ', '.join(changes)))
    for key in keys:
        op.create_foreign_key(key, 'host_results', 'jobs',
                              ['job_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    # NOTE: the column changes stay: an older release reads the finer
    # timestamps and the case-sensitive strings just the same.
    op.drop_table('store_locks')
