"""Schema migrations (alembic), run by ``precache-manage db sync``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import command, script
from alembic.config import Config
from alembic.runtime import migration

from precache import exception
from precache.db import api, retry

_SCRIPT_LOCATION = os.path.join(os.path.dirname(__file__), 'migrations')


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option('script_location', _SCRIPT_LOCATION)
    config.set_main_option('sqlalchemy.url', url.replace('%', '%%'))
    return config


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A database that refuses us (wrong password, no such database,
    nothing listening) is one line naming the store and the option."""
    try:
        yield
    except sa.exc.DBAPIError as error:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise exception.JobStoreError(
            reason='%s (at %s; check [database] connection)'
            % (retry.summary(error), shown)) from None


def upgrade(url: str | None = None, revision: str = 'head') -> None:
    url = url or api.default_url()
    with _reaching(url):
        # NOTE: creates the SQLite file's directory before alembic connects.
        api.create_engine(url).dispose()
        command.upgrade(_config(url), revision)


def downgrade(revision: str, url: str | None = None) -> None:
    """Back to ``revision`` (for operators undoing an upgrade, and tests)."""
    url = url or api.default_url()
    with _reaching(url):
        command.downgrade(_config(url), revision)


def head() -> str:
    head = script.ScriptDirectory.from_config(_config('')).get_current_head()
    assert head is not None
    return head


def current(url: str | None = None) -> str | None:
    url = url or api.default_url()
    engine = api.create_engine(url)
    try:
        with _reaching(url), engine.connect() as conn:
            return migration.MigrationContext.configure(
                conn).get_current_revision()
    finally:
        engine.dispose()


def check_current(url: str | None = None) -> None:
    """Refuse to run a service on a job store that is not migrated."""
    url = url or api.default_url()
    found = current(url)
    if found != head():
        raise exception.ServiceUnavailable(
            service='job store',
            reason='schema is at %s, expected %s; run "precache-manage db '
                   'sync"' % (found or 'nothing', head()))
