"""Fixtures shared by unit and functional tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from oslo_config import fixture as config_fixture

from precache import service
from precache.conf import CONF

service.register_library_opts(CONF)
CONF([], project='precache', default_config_files=[])


@pytest.fixture(autouse=True)
def conf(tmp_path) -> Iterator[config_fixture.Config]:
    """CONF with every override undone after the test; state in tmp."""
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    fixture.config(state_path=str(tmp_path / 'state'))
    fixture.config(group='agent',
                   instances_path=str(tmp_path / 'instances'))
    # NOTE: one attempt per host: tests assert what a failure records;
    # the tests of retries ask for more.
    fixture.config(group='conductor', host_attempts=1)
    yield fixture
    fixture.cleanUp()


def _fresh_database(admin_url: str, create: str,
                    drop: str) -> Iterator[str]:
    """The URL of a new, empty database on ``admin_url``'s server,
    dropped afterwards (``create``/``drop`` take its name)."""
    import uuid

    import sqlalchemy as sa

    name = 'precache_test_%s' % uuid.uuid4().hex[:12]
    admin = sa.create_engine(admin_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql(create % name)
    try:
        yield str(sa.engine.make_url(admin_url).set(database=name)
                  .render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(drop % name)
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    yield from _fresh_database(
        os.environ.get('PRECACHE_TEST_POSTGRES_URL',
                       'postgresql+psycopg2://precache:precache@127.0.0.1:'
                       '5432/postgres'),
        'CREATE DATABASE %s', 'DROP DATABASE IF EXISTS %s WITH (FORCE)')


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB (MySQL) database, dropped afterwards."""
    yield from _fresh_database(
        os.environ.get('PRECACHE_TEST_MARIADB_URL',
                       'mysql+pymysql://root@127.0.0.1:3306/mysql'),
        'CREATE DATABASE %s CHARACTER SET utf8mb4',
        'DROP DATABASE IF EXISTS %s')
