"""Tables of the job store. Change them only together with a migration."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.dialects import mysql

#: MySQL/MariaDB tables: 4-byte UTF-8, and compared byte for byte as on
#: SQLite and PostgreSQL (the default collation folds case, so hosts
#: ``Compute1`` and ``compute1`` would collide in a unique key).
MYSQL_TABLE = {'mysql_charset': 'utf8mb4', 'mysql_collate': 'utf8mb4_bin',
               'mysql_engine': 'InnoDB'}

#: Seconds of a host's call: a double (MySQL's FLOAT is single precision).
Seconds = sa.Float().with_variant(mysql.DOUBLE(asdecimal=False), 'mysql',
                                  'mariadb')


class Base(orm.DeclarativeBase):
    pass


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite drops tz).

    MySQL's DATETIME keeps whole seconds unless told otherwise: jobs
    created within a second would tie, and newest-first pages reorder.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ('mysql', 'mariadb'):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value


class Job(Base):
    __tablename__ = 'jobs'

    id: orm.Mapped[str] = orm.mapped_column(sa.String(36), primary_key=True)
    aggregate: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    state: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    images: orm.Mapped[list] = orm.mapped_column(sa.JSON)
    options: orm.Mapped[dict] = orm.mapped_column(sa.JSON)
    reason: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    conductor: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    request_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    created_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    started_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    finished_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    #: The lease of ``conductor`` on the job: its generation moves by one
    #: at every takeover (writes carrying an older one are refused), and
    #: it is free for the taking once ``lease_expires_at`` has passed.
    lease_generation: orm.Mapped[int] = orm.mapped_column(
        sa.Integer, default=0, server_default='0')
    lease_expires_at: orm.Mapped[datetime.datetime | None] = \
        orm.mapped_column(UTCDateTime)

    __table_args__ = (
        sa.Index('ix_jobs_state', 'state'),
        sa.Index('ix_jobs_aggregate', 'aggregate'),
        sa.Index('ix_jobs_created_at', 'created_at'),
        sa.Index('ix_jobs_conductor', 'conductor'),
        MYSQL_TABLE,
    )


class HostResult(Base):
    """One (host, image) of a job, from pending to its final state."""

    __tablename__ = 'host_results'

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True,
                                            autoincrement=True)
    job_id: orm.Mapped[str] = orm.mapped_column(
        sa.String(36), sa.ForeignKey('jobs.id', ondelete='CASCADE'))
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    cell: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    image_id: orm.Mapped[str] = orm.mapped_column(sa.String(36))
    state: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    method: orm.Mapped[str | None] = orm.mapped_column(sa.String(16))
    bytes: orm.Mapped[int] = orm.mapped_column(sa.BigInteger, default=0)
    seconds: orm.Mapped[float] = orm.mapped_column(Seconds, default=0.0)
    reason: orm.Mapped[str | None] = orm.mapped_column(sa.Text)
    started_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    finished_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint('job_id', 'host', 'image_id',
                            name='uq_host_results_job_host_image'),
        sa.Index('ix_host_results_host_image', 'host', 'image_id'),
        MYSQL_TABLE,
    )


class Agent(Base):
    """The latest heartbeat of one host's agent (the agent registry)."""

    __tablename__ = 'agents'

    host: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                              primary_key=True)
    cell: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    version: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    rpc_version: orm.Mapped[str | None] = orm.mapped_column(sa.String(16))
    backends: orm.Mapped[list] = orm.mapped_column(sa.JSON)
    stores: orm.Mapped[list] = orm.mapped_column(sa.JSON)
    free_bytes: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    cache_bytes: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    cache_images: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    first_seen: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    last_seen: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    #: Set by the goodbye of a cleanly stopping agent, cleared by its
    #: next heartbeat: a stopped agent is skipped at once, not after
    #: agent_down_time.
    stopped_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    #: The agent's own clock when it sent the heartbeat (or goodbye) the
    #: row holds, if it said: a heartbeat sent before the row's goodbye
    #: but received after it must not clear stopped_at.
    sent_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)

    __table_args__ = (sa.Index('ix_agents_cell', 'cell'), MYSQL_TABLE)


class Conductor(Base):
    """The latest heartbeat of one conductor (Nova's service rows)."""

    __tablename__ = 'conductors'
    __table_args__ = MYSQL_TABLE

    host: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                              primary_key=True)
    version: orm.Mapped[str | None] = orm.mapped_column(sa.String(64))
    #: up, draining or stopped (conductor/liveness.py)
    state: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    started_at: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)
    last_seen: orm.Mapped[datetime.datetime] = orm.mapped_column(
        UTCDateTime)


class ScheduleRun(Base):
    """The latest run of a built-in schedule, shared by all conductors.

    A conductor claims an occurrence by moving ``occurrence`` forward
    under a lock; that is what keeps a schedule from running twice, and
    what a conductor starting up compares with the cron expression to
    find a run missed while it was down.
    """

    __tablename__ = 'schedule_runs'
    __table_args__ = MYSQL_TABLE

    name: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                              primary_key=True)
    occurrence: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    job_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(36))
    conductor: orm.Mapped[str | None] = orm.mapped_column(sa.String(255))
    claimed_at: orm.Mapped[datetime.datetime | None] = orm.mapped_column(
        UTCDateTime)
    #: Why the claimed occurrence started no job (an error, or nothing
    #: to do); None while its job is being created, or once it is.
    note: orm.Mapped[str | None] = orm.mapped_column(sa.Text)


class StoreLock(Base):
    """A named lock of MySQL/MariaDB transactions (db.engine.serialize):
    each takes it by writing its row; ``taken`` only counts."""

    __tablename__ = 'store_locks'
    __table_args__ = MYSQL_TABLE

    name: orm.Mapped[str] = orm.mapped_column(sa.String(255),
                                              primary_key=True)
    taken: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
