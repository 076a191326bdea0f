"""Engines and sessions of the job store, per database kind.

SQLite takes its write lock up front and queues writers in-process;
PostgreSQL and MySQL/MariaDB get a pool that checks connections before
use. MySQL runs READ COMMITTED, as PostgreSQL does by default: the
store's transactions are written (and tested) for that, and it takes no
gap locks, so fewer lock races between conductors.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, orm
from sqlalchemy.dialects import mysql

from precache import exception
from precache.conf import CONF
from precache.db import models

MYSQL = ('mysql', 'mariadb')


def default_url() -> str:
    """``[database] connection``, else an SQLite file under state_path."""
    url = CONF.database.connection
    if url:
        return url
    return 'sqlite:///%s' % os.path.join(CONF.state_path, 'precache.sqlite')


#: The extra of precache that installs each server database's driver,
#: and the URL scheme of that driver.
EXTRAS = {'mysql': ('mysql', 'mysql+pymysql'),
          'mariadb': ('mysql', 'mysql+pymysql'),
          'postgresql': ('postgresql', 'postgresql+psycopg2')}


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``.

    :raises: JobStoreError when the URL's database driver is missing.
    """
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    try:
        return _create_engine(url, parsed)
    except ModuleNotFoundError as error:
        extra, scheme = EXTRAS.get(backend, (backend, parsed.drivername))
        raise exception.JobStoreError(
            reason='the database driver of %s://… is not installed (%s): '
                   'pip install precache[%s] and use %s://…' % (
                       parsed.drivername, error, extra, scheme)) from None


def _create_engine(url: str, parsed: sa.URL) -> sa.Engine:
    if parsed.get_backend_name() in MYSQL:
        # NOTE: utf8mb4: MySQL's "utf8" stops at three bytes per character.
        if 'charset' not in parsed.query:
            parsed = parsed.update_query_dict({'charset': 'utf8mb4'})
        return sa.create_engine(
            parsed, pool_pre_ping=True, isolation_level='READ COMMITTED',
            pool_recycle=CONF.database.connection_recycle_time)
    if not url.startswith('sqlite'):
        return sa.create_engine(
            url, pool_pre_ping=True,
            pool_recycle=CONF.database.connection_recycle_time)
    path = sa.engine.make_url(url).database
    if path and path != ':memory:':
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = sa.create_engine(url, connect_args={'timeout': 30,
                                                 'check_same_thread': False})

    # NOTE: pysqlite's lazy BEGIN lets two writers both read, then one
    # fails with "database is locked". Taking the write lock up front
    # makes them queue instead (busy timeout above).
    # NOTE: write-ahead log: pollers read while the runner writes, and a
    # commit appends to the log without an fsync (synchronous=NORMAL: a
    # power cut may lose the last commits, never corrupt the file; the
    # conductor resumes hosts left unfinished). Rollback-journal commits
    # cost two fsyncs each, two per host of every job.
    @event.listens_for(engine, 'connect')
    def _no_implicit_begin(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute('PRAGMA foreign_keys = ON')
        dbapi_conn.execute('PRAGMA journal_mode = WAL')
        dbapi_conn.execute('PRAGMA synchronous = NORMAL')

    @event.listens_for(engine, 'begin')
    def _begin_immediate(conn: sa.Connection) -> None:
        # NOTE: reads (see reader()) take no write lock: in WAL mode they
        # see a snapshot and never wait for the writers.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql('BEGIN')
        else:
            conn.exec_driver_sql('BEGIN IMMEDIATE')

    return engine


#: Execution option of the engine read-only sessions are bound to.
READ_ONLY = 'precache_read_only'

_WRITE_LOCKS: weakref.WeakKeyDictionary[sa.Engine, threading.RLock] = \
    weakref.WeakKeyDictionary()


class Writer:
    """Write sessions of one engine.

    On SQLite the threads of a process take turns on a lock: SQLite makes
    a waiting writer sleep and retry (1, 2, 5 … 100 ms), which at 64
    hosts starting at once cost the fan-out more than the writes did.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._sessions = orm.sessionmaker(engine, expire_on_commit=False)
        self._lock: contextlib.AbstractContextManager[Any] = (
            _WRITE_LOCKS.setdefault(engine, threading.RLock())
            if engine.dialect.name == 'sqlite' else contextlib.nullcontext())

    @contextmanager
    def begin(self) -> Iterator[orm.Session]:
        with self._lock, self._sessions.begin() as session:
            yield session


def reader(engine: sa.Engine) -> orm.sessionmaker:
    """Sessions for reads only: on SQLite they do not queue behind
    writers (status polls, registry lookups before each host)."""
    return orm.sessionmaker(engine.execution_options(**{READ_ONLY: True}),
                            expire_on_commit=False)


def serialize(session: orm.Session, key: str) -> None:
    """Hold a lock named ``key`` until the transaction ends.

    SQLite transactions already take the write lock up front (see
    create_engine); PostgreSQL gets a transaction-scoped advisory lock, so
    two conductors checking then writing the same thing queue up.
    MySQL writes the key's row of ``store_locks``: the row lock queues
    them on one server, and on Galera, whose row locks stay on their
    node, the second commit fails certification as a deadlock and is run
    again (:mod:`precache.db.retry`), then sees the first one's writes.
    """
    dialect = session.get_bind().dialect.name
    if dialect == 'postgresql':
        session.execute(sa.text('SELECT pg_advisory_xact_lock(hashtext(:k))'),
                        {'k': key})
    elif dialect in MYSQL:
        insert = mysql.insert(models.StoreLock).values(name=key, taken=1)
        session.execute(insert.on_duplicate_key_update(
            taken=models.StoreLock.taken + 1))

