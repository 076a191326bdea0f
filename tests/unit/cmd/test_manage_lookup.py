"""precache-manage: short job ids, empty aggregates, and its options.

Short ids are looked up by the conductor (``get_job``) in the job store;
``find_job_ids`` runs on each database the project supports.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pymysql
import pytest
import sqlalchemy as sa

from precache import exception, objects, version
from precache.cmd import manage
from precache.db import migration
from precache.db.api import JobStore


def _parse(*argv: str):
    return manage.build_parser().parse_args(list(argv))


@pytest.fixture
def bus(cloud, conf):
    conf.config(transport_url=cloud.url)
    return cloud


def _record(store: JobStore, job_id: str) -> None:
    """A job no conductor runs (it names another conductor)."""
    store.create_job(job_id, 'one', [], [], {}, conductor='elsewhere',
                     request_id='req-test')


# -- find_job_ids on SQLite, PostgreSQL and MariaDB -------------------------

@pytest.fixture
def mariadb_url() -> Iterator[str]:
    name = 'precache_test_%s' % uuid.uuid4().hex[:12]
    admin = pymysql.connect(host='127.0.0.1', user='root', password='')
    try:
        with admin.cursor() as cursor:
            cursor.execute('CREATE DATABASE %s' % name)
        yield 'mysql+pymysql://root@127.0.0.1:3306/%s' % name
    finally:
        with admin.cursor() as cursor:
            cursor.execute('DROP DATABASE IF EXISTS %s' % name)
        admin.close()


@pytest.fixture(params=['sqlite', 'postgresql', 'mariadb'])
def any_store(request, tmp_path) -> Iterator[JobStore]:
    if request.param == 'sqlite':
        url = 'sqlite:///%s' % (tmp_path / 'jobs.sqlite')
    else:
        url = request.getfixturevalue(
            'postgres_url' if request.param == 'postgresql'
            else 'mariadb_url')
    migration.upgrade(url)
    store = JobStore(url)
    yield store
    store.close()
    sa.create_engine(url).dispose()


def test_find_job_ids_by_prefix_with_wildcards_escaped(any_store):
    ids = ['abcd0000-0000-4000-8000-000000000001',
           'abcd0000-0000-4000-8000-000000000002',
           'abce0000-0000-4000-8000-000000000003',
           'a%c_!000-0000-4000-8000-000000000004']
    for job_id in ids:
        _record(any_store, job_id)
    assert any_store.find_job_ids('abcd') == ids[:2]
    assert any_store.find_job_ids('abcd', limit=1) == ids[:1]
    assert any_store.find_job_ids('abce0000') == ids[2:3]
    assert any_store.find_job_ids(ids[1]) == ids[1:2]
    # % and _ are characters, not wildcards; ! (the escape) too.
    assert any_store.find_job_ids('a%') == ids[3:]
    assert any_store.find_job_ids('a_') == []
    assert any_store.find_job_ids('a%c_!') == ids[3:]
    assert any_store.find_job_ids('%') == []
    assert any_store.find_job_ids('zzzz') == []


# -- job show / wait with a short id ----------------------------------------

def test_job_show_and_wait_take_the_short_id(bus, capsys):
    image_id = bus.add_image()
    job = bus.wait(bus.api.cache_images({}, 'one', [image_id]).id)
    capsys.readouterr()
    short = job.id[:8]

    assert manage.job_show(_parse('job', 'show', short, '--json')) == 0
    assert json.loads(capsys.readouterr().out)['id'] == job.id
    assert manage.job_show(_parse('job', 'show', short.upper())) == 0
    assert 'Job %s done: 1 cached' % job.id in capsys.readouterr().out
    assert manage.job_wait(_parse('job', 'wait', short)) == 0
    assert capsys.readouterr().out.startswith('Job %s done' % job.id)


def test_ambiguous_short_id_names_the_candidates(bus):
    first, second = ('feedbeef-0000-4000-8000-%012d' % n for n in (1, 2))
    _record(bus.store, first)
    _record(bus.store, second)
    with pytest.raises(exception.Invalid) as caught:
        manage.job_show(_parse('job', 'show', 'feedbeef'))
    # NOTE: .message: str() of a remote error has its traceback.
    assert caught.value.message == (
        'Job id feedbeef is ambiguous: it starts %s, %s; give more '
        'characters' % (first, second))
    with pytest.raises(exception.Invalid, match='too short'):
        manage.job_show(_parse('job', 'show', 'fee'))
    with pytest.raises(exception.JobNotFound):
        manage.job_show(_parse('job', 'show', 'feedbeee'))


# -- empty aggregates --------------------------------------------------------

def test_cache_on_an_aggregate_without_hosts_says_so(bus, capsys):
    image_id = bus.add_image()
    assert manage.cache(_parse('cache', '--aggregate', 'empty', '--image',
                               image_id, '--wait')) == 0
    out = capsys.readouterr().out
    assert out.startswith('aggregate empty has no hosts: nothing to do')
    assert out.count('\n') == 1


def test_reconcile_without_hosts_or_desired_images(bus, capsys):
    assert manage.reconcile(_parse('reconcile', '--aggregate',
                                   'empty')) == 0
    assert capsys.readouterr().out == (
        'aggregate empty has no hosts: nothing to do\n')
    assert manage.reconcile(_parse('reconcile', '--aggregate', 'empty',
                                   '--json')) == 0
    assert json.loads(capsys.readouterr().out) == {
        'aggregate': 'empty', 'job': None,
        'reason': 'has no hosts: nothing to do'}
    # u-ghost never held an image: nothing to do means nothing desired.
    assert manage.reconcile(_parse('reconcile', '--aggregate',
                                   'partial')) == 0
    assert capsys.readouterr().out == (
        'aggregate partial has no desired images: nothing to do\n')


# -- options -----------------------------------------------------------------

def test_global_options_before_and_after_the_command():
    args = manage._merge(_parse('--config-file', 'a.conf', '--timeout', '5',
                                'job', 'show', 'j', '--config-file',
                                'b.conf', '--config-dir', 'd'))
    assert args.config_file == ['a.conf', 'b.conf']
    assert (args.timeout, args.config_dir) == (5, 'd')
    args = manage._merge(_parse('agents', 'list', '--timeout', '7'))
    assert (args.config_file, args.timeout, args.config_dir) == (
        [], 7, None)
    args = manage._merge(_parse('db', 'sync'))
    assert (args.config_file, args.timeout) == ([], 30)


def test_job_list_state_is_validated(capsys):
    with pytest.raises(SystemExit) as info:
        manage.main(['job', 'list', '--state', 'bogus'])
    assert info.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    for state in objects.JobState:
        assert _parse('job', 'list', '--state', state.value).state == \
            state.value


def test_version_and_exit_codes_in_help(capsys):
    with pytest.raises(SystemExit) as info:
        manage.main(['--version'])
    assert info.value.code == 0
    assert capsys.readouterr().out == 'precache-manage %s\n' % (
        version.version_string)
    for argv in (['--help'], ['job', 'show', '--help']):
        with pytest.raises(SystemExit):
            manage.main(argv)
        out = capsys.readouterr().out
        assert 'exit codes:\n  0 ' in out
        assert '  3    conductor or message bus unreachable' in out
