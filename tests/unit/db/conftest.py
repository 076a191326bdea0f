"""Job stores on SQLite and on PostgreSQL, migrated to head.

``db_url`` is an empty database of each kind (for the migration tests).
``store`` is a migrated, empty job store; to keep the suite fast, each
kind is migrated once per session and emptied (PostgreSQL) or copied
(SQLite) for every test.
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

KINDS = ['sqlite', pytest.param('postgresql', marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def db_url(request, tmp_path) -> str:
    """An empty database of each kind."""
    if request.param == 'sqlite':
        return 'sqlite:///%s' % (tmp_path / 'jobs.sqlite')
    return request.getfixturevalue('postgres_url')


@pytest.fixture(scope='session')
def _sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('template') / 'jobs.sqlite'
    migration.upgrade('sqlite:///%s' % path)
    return str(path)


@pytest.fixture(scope='session')
def _postgres_jobs_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session (as postgres_url
    in tests/conftest.py, but shared)."""
    admin_url = os.environ.get(
        'PRECACHE_TEST_POSTGRES_URL',
        'postgresql+psycopg2://precache:precache@127.0.0.1:5432/postgres')
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
            conn.exec_driver_sql(
                'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        admin.dispose()


@pytest.fixture(params=KINDS)
def store(request, tmp_path) -> Iterator[JobStore]:
    """A migrated, empty job store of each kind."""
    if request.param == 'sqlite':
        path = tmp_path / 'jobs.sqlite'
        shutil.copy(request.getfixturevalue('_sqlite_template'), path)
        store = JobStore('sqlite:///%s' % path)
    else:
        store = JobStore(request.getfixturevalue('_postgres_jobs_url'))
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                'TRUNCATE host_results, jobs, schedule_runs')
    yield store
    store.close()
