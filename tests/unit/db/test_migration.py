"""Migrations build exactly the models' schema, on SQLite, PostgreSQL and
MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from precache import exception
from precache.db import api, migration, models


def test_upgrade_matches_the_models(db_url):
    migration.upgrade(db_url)
    engine = api.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={'compare_type': True})
            assert compare_metadata(context, models.Base.metadata) == []
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert {'jobs', 'host_results', 'alembic_version'} <= tables


def test_current_and_check_current(db_url):
    assert migration.current(db_url) is None
    with pytest.raises(exception.ServiceUnavailable) as info:
        migration.check_current(db_url)
    assert 'schema is at nothing, expected %s' % migration.head() in \
        str(info.value)
    assert 'precache-manage db sync' in str(info.value)

    migration.upgrade(db_url)
    assert migration.current(db_url) == migration.head()
    migration.check_current(db_url)


def test_upgrade_is_idempotent(db_url):
    migration.upgrade(db_url)
    migration.upgrade(db_url)
    assert migration.current(db_url) == migration.head()


def test_head_is_the_only_head():
    assert migration.head() == '0007'


def test_default_url_is_sqlite_under_state_path(tmp_path):
    url = api.default_url()
    assert url == 'sqlite:///%s' % (tmp_path / 'state' / 'precache.sqlite')
    migration.upgrade()
    assert (tmp_path / 'state' / 'precache.sqlite').exists()
    migration.check_current()


def test_default_url_from_configuration(conf):
    conf.config(group='database', connection='postgresql://u:p@db/x')
    assert api.default_url() == 'postgresql://u:p@db/x'
