"""Job stores on SQLite, PostgreSQL and MariaDB, migrated to head.

``db_url`` is an empty database of each kind (for the migration tests).
``store`` is a migrated, empty job store; to keep the suite fast, each
server kind is migrated once per session and emptied for every test, and
SQLite is copied from a migrated file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from precache.db import migration
from precache.db.api import JobStore

KINDS = ['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres),
         pytest.param('mysql', marks=pytest.mark.mariadb)]

#: Every table a test may fill, children first.
TABLES = ('host_results', 'jobs', 'schedule_runs', 'agents', 'conductors')


@pytest.fixture(params=KINDS)
def db_url(request, tmp_path) -> str:
    """An empty database of each kind."""
    if request.param == 'sqlite':
        return 'sqlite:///%s' % (tmp_path / 'jobs.sqlite')
    if request.param == 'mysql':
        return request.getfixturevalue('mariadb_url')
    return request.getfixturevalue('postgres_url')


@pytest.fixture(scope='session')
def _sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('template') / 'jobs.sqlite'
    migration.upgrade('sqlite:///%s' % path)
    return str(path)


def _server_database(admin_url: str, drop: str) -> Iterator[str]:
    """One migrated database for the session (as postgres_url and
    mariadb_url in tests/conftest.py, but shared)."""
    name = 'precache_unit_%s' % uuid.uuid4().hex[:12]
    admin = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE %s' % name)
    try:
        url = (sa.engine.make_url(admin_url).set(database=name)
               .render_as_string(hide_password=False))
        migration.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop % name)
        admin.dispose()


@pytest.fixture(scope='session')
def _postgres_jobs_url() -> Iterator[str]:
    yield from _server_database(
        os.environ.get(
            'PRECACHE_TEST_POSTGRES_URL',
            'postgresql+psycopg2://precache:precache@127.0.0.1:5432/postgres'),
        'DROP DATABASE IF EXISTS %s WITH (FORCE)')


@pytest.fixture(scope='session')
def _mariadb_jobs_url() -> Iterator[str]:
    yield from _server_database(
        os.environ.get('PRECACHE_TEST_MARIADB_URL',
                       'mysql+pymysql://root@127.0.0.1:3306/mysql'),
        'DROP DATABASE IF EXISTS %s')


@pytest.fixture(params=KINDS)
def store(request, tmp_path) -> Iterator[JobStore]:
    """A migrated, empty job store of each kind."""
    if request.param == 'sqlite':
        path = tmp_path / 'jobs.sqlite'
        shutil.copy(request.getfixturevalue('_sqlite_template'), path)
        store = JobStore('sqlite:///%s' % path)
    elif request.param == 'postgresql':
        store = JobStore(request.getfixturevalue('_postgres_jobs_url'))
        with store.engine.begin() as conn:
            conn.exec_driver_sql('TRUNCATE %s' % ', '.join(TABLES))
    else:
        store = JobStore(request.getfixturevalue('_mariadb_jobs_url'))
        with store.engine.begin() as conn:
            # NOTE: MySQL refuses to TRUNCATE a table a foreign key
            # refers to; DELETE, children first.
            for table in TABLES:
                conn.exec_driver_sql('DELETE FROM %s' % table)
    yield store
    store.close()
