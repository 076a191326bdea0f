"""precache-manage: parser, exit codes, and commands against a conductor.

The commands run against the session's in-process ``cloud``
(tests/unit/conftest.py). ``main()`` itself is only called where it exits
before start-up: it ends with ``rpc.cleanup()``, which would close the
cloud's transport.
"""

from __future__ import annotations

import datetime
import json

import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from precache import exception, objects
from precache.cmd import (
    EXIT_BAD_REQUEST,
    EXIT_UNAVAILABLE,
    console,
    guarded,
    manage,
)
from precache.db import migration

State = objects.HostImageState


def _parse(*argv: str):
    return manage.build_parser().parse_args(list(argv))


# -- parser ----------------------------------------------------------------

def test_cache_arguments():
    args = _parse('--timeout', '5', 'cache', '--aggregate', 'edge',
                  '--image', 'a', '--image', 'b',
                  '--max-concurrent-hosts', '3',
                  '--max-concurrent-hosts-per-cell', '1', '--wait',
                  '--json')
    assert args.func is manage.cache
    assert args.timeout == 5
    assert args.aggregate == 'edge'
    assert args.image == ['a', 'b']
    assert args.max_concurrent_hosts == 3
    assert args.max_concurrent_hosts_per_cell == 1
    assert args.wait and args.json


def test_defaults():
    args = _parse('cache', '--aggregate', 'x', '--image', 'a')
    assert args.timeout == 30
    assert args.max_concurrent_hosts is None
    assert args.max_concurrent_hosts_per_cell is None
    assert not args.wait and not args.json
    assert args.config_file == [] and args.config_dir is None


def test_window_and_deadline_arguments():
    args = _parse('cache', '--aggregate', 'x', '--image', 'a', '--window',
                  '2h', '--hosts', 'h1, h2')
    assert args.window == 7200 and args.deadline is None
    assert args.hosts == ['h1', 'h2']
    args = _parse('cache', '--aggregate', 'x', '--image', 'a',
                  '--deadline', '04:00')
    deadline = datetime.datetime.fromisoformat(args.deadline)
    now = datetime.datetime.now().astimezone()
    assert now < deadline <= now + datetime.timedelta(days=1)
    assert (deadline.hour, deadline.minute) == (4, 0)
    assert _parse('reconcile', '--aggregate', 'x').func is manage.reconcile


def test_job_commands():
    assert _parse('job', 'show', 'j1').func is manage.job_show
    assert _parse('job', 'wait', 'j1', '--json').func is manage.job_wait
    args = _parse('job', 'list', '--aggregate', 'a', '--state', 'done',
                  '--limit', '5', '--marker', 'm')
    assert args.func is manage.job_list
    assert (args.aggregate, args.state, args.limit, args.marker) == \
        ('a', 'done', 5, 'm')
    assert _parse('job', 'list').limit == 50
    assert _parse('db', 'sync').func is manage.db_sync


def test_config_files_repeat():
    args = _parse('--config-file', 'a.conf', '--config-file', 'b.conf',
                  '--config-dir', 'd', 'db', 'sync')
    assert args.config_file == ['a.conf', 'b.conf']
    assert args.config_dir == 'd'


@pytest.mark.parametrize('argv', [
    [],
    ['cache'],
    ['cache', '--aggregate', 'x'],
    ['cache', '--image', 'a'],
    ['cache', '--aggregate', 'x', '--image', 'a',
     '--max-concurrent-hosts', '0'],
    ['cache', '--aggregate', 'x', '--image', 'a',
     '--max-concurrent-hosts-per-cell', 'two'],
    ['cache', '--aggregate', 'x', '--image', 'a', '--window', 'soon'],
    ['cache', '--aggregate', 'x', '--image', 'a', '--deadline', '4 am'],
    ['cache', '--aggregate', 'x', '--image', 'a', '--window', '1h',
     '--deadline', '04:00'],
    ['cache', '--aggregate', 'x', '--image', 'a', '--hosts', ','],
    ['reconcile'],
    ['--timeout', '0', 'db', 'sync'],
    ['job'],
    ['job', 'show'],
    ['job', 'list', '--limit', '-1'],
    ['db'],
    ['frobnicate'],
])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        manage.main(argv)
    assert info.value.code == 2
    assert 'usage: precache-manage' in capsys.readouterr().err


# -- exit codes --------------------------------------------------------------

def _counts(**values: int) -> dict[str, int]:
    return {state.value: values.get(state.value, 0) for state in State}


@pytest.mark.parametrize('state,counts,code', [
    (objects.JobState.DONE, _counts(cached=3, existing=2), 0),
    (objects.JobState.DONE, _counts(existing=1), 0),
    (objects.JobState.DONE, _counts(cached=3, error=1), 1),
    (objects.JobState.DONE, _counts(cached=3, unsupported=1), 1),
    (objects.JobState.DONE, _counts(cached=3, skipped=1), 1),
    (objects.JobState.RUNNING, _counts(cached=3), 1),
    (objects.JobState.RUNNING, _counts(cached=3, running=1), 1),
    (objects.JobState.FAILED, _counts(cached=3), 1),
    (objects.JobState.CANCELLED, _counts(cached=1, pending=1), 1),
    (objects.JobState.EXPIRED, _counts(cached=1, skipped=1), 1),
])
def test_exit_code(state, counts, code):
    job = objects.Job(id='j', aggregate='a', image_ids=['i'], state=state,
                      counts=counts)
    assert console.exit_code(job) == code


@pytest.mark.parametrize('error,code', [
    (exception.InvalidImageList(reason='no image given'), EXIT_BAD_REQUEST),
    (exception.AggregateNotFound(aggregate='x'), EXIT_BAD_REQUEST),
    (cfg.ConfigFilesNotFoundError(['/nope.conf']), EXIT_BAD_REQUEST),
    (exception.ServiceUnavailable(service='bus', reason='down'),
     EXIT_UNAVAILABLE),
    (messaging.MessagingTimeout('no reply'), EXIT_UNAVAILABLE),
    (exception.ImageFetchFailed(image='i', reason='r'), 1),
    (KeyboardInterrupt(), 130),
    (RuntimeError('bug\nsecond line'), 1),
])
def test_guarded_turns_errors_into_one_line_and_a_code(error, code,
                                                       capsys):
    @guarded
    def main():
        """Doc."""
        raise error

    assert main.__name__ == 'main' and main.__doc__ == 'Doc.'
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith('ERROR: ')
    assert err.count('\n') == 1
    if isinstance(error, exception.PrecacheException):
        assert err == 'ERROR: %s\n' % error.message
    if isinstance(error, RuntimeError):
        assert err == 'ERROR: unexpected error: bug (details in the log)\n'


def test_guarded_passes_results_through():
    assert guarded(lambda: 7)() == 7


# -- commands ----------------------------------------------------------------

def test_db_sync(tmp_path, capsys):
    assert manage.db_sync(_parse('db', 'sync')) == 0
    assert capsys.readouterr().out == 'Job store is at revision %s\n' % \
        migration.head()
    assert (tmp_path / 'state' / 'precache.sqlite').exists()
    migration.check_current()


@pytest.fixture
def bus(cloud, conf):
    """CONF pointing at the cloud's transport, as a config file would."""
    conf.config(transport_url=cloud.url)
    return cloud


def test_cache_without_wait_prints_the_job(bus, capsys):
    image_id = bus.add_image()
    code = manage.cache(_parse('cache', '--aggregate', 'all',
                               '--image', image_id))
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith('Job ')
    assert out.endswith(' accepted: 1 image(s) on 3 host(s) of all\n')
    bus.wait(out.split()[1])


def test_cache_wait_all_resident_exits_0(bus, capsys):
    image_id = bus.add_image()
    code = manage.cache(_parse('cache', '--aggregate', 'one', '--image',
                               image_id, '--wait', '--json'))
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data['state'] == 'done'
    assert [(r['host'], r['state']) for r in data['results']] == [
        ('u-h2', 'cached')]


def test_cache_wait_with_a_failure_exits_1(bus, capsys):
    good, bad = bus.add_image(), bus.add_image(bad_hash=True)
    code = manage.cache(_parse('cache', '--aggregate', 'one', '--image',
                               good, '--image', bad, '--wait',
                               '--max-concurrent-hosts', '1'))
    assert code == 1
    # NOTE: off a terminal (cron), exactly one line: the summary.
    [line] = capsys.readouterr().out.splitlines()
    job_id = line.split()[1]
    assert line.startswith('Job %s done: 1 cached, 0 existing, 1 error, '
                           '0 unsupported, 0 skipped in ' % job_id)
    assert bus.api.get_job({}, job_id).options == {
        'max_concurrent_hosts': 1, 'source': 'cli'}
    assert manage.job_show(_parse('job', 'show', job_id)) == 1
    out = capsys.readouterr().out
    assert '%s u-h2 cell1 %s error - 0 ' % (job_id, bad) in out
    assert 'Job %s: source cli, deadline -' % job_id in out


def test_cache_window_hosts_and_dedupe(bus, capsys):
    image_id = bus.add_image()
    code = manage.cache(_parse('cache', '--aggregate', 'all', '--image',
                               image_id, '--window', '90m', '--hosts',
                               'u-h3,u-h1', '--dedupe', '--json'))
    assert code == 0
    job = objects.Job.from_dict(json.loads(capsys.readouterr().out))
    assert job.options['window'] == 5400
    assert job.options['hosts'] == ['u-h3', 'u-h1']
    assert job.options['dedupe'] is True and job.hosts == 2
    deadline = datetime.datetime.fromisoformat(job.options['deadline'])
    assert deadline - job.created_at == pytest.approx(
        datetime.timedelta(minutes=90), abs=datetime.timedelta(seconds=5))
    bus.wait(job.id)


def test_reconcile_command(bus, capsys):
    image_id = bus.add_image(precache_aggregates='all')
    assert manage.reconcile(_parse('reconcile', '--aggregate', 'all',
                                   '--hosts', 'u-h2', '--wait')) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert ' done: 1 cached, ' in line
    job = bus.api.get_job({}, line.split()[1])
    assert job.image_ids == [image_id]
    assert job.options['source'] == 'cli'
    assert manage.reconcile(_parse('reconcile', '--aggregate', 'all',
                                   '--hosts', 'u-h2')) == 0
    assert capsys.readouterr().out == (
        'aggregate all has every desired image on every host: nothing to '
        'do\n')
    # The other hosts still lack it: a job for them (not waited for).
    assert manage.reconcile(_parse('reconcile', '--aggregate', 'all',
                                   '--json')) == 0
    job = objects.Job.from_dict(json.loads(capsys.readouterr().out))
    assert job.options['hosts'] == ['u-h1', 'u-h3']
    bus.wait(job.id)


def test_cache_bad_request_is_typed(bus):
    with pytest.raises(exception.AggregateNotFound):
        manage.cache(_parse('cache', '--aggregate', 'nope', '--image',
                            bus.add_image()))
    with pytest.raises(SystemExit) as info:
        guarded(manage.cache)(_parse('cache', '--aggregate', 'all',
                                     '--image', 'not-a-uuid'))
    assert info.value.code == EXIT_BAD_REQUEST


def test_job_show_wait_and_list(bus, capsys):
    image_id = bus.add_image()
    job = bus.wait(bus.api.cache_images({}, 'one', [image_id]).id)
    capsys.readouterr()

    assert manage.job_show(_parse('job', 'show', job.id, '--json')) == 0
    assert json.loads(capsys.readouterr().out)['id'] == job.id

    assert manage.job_wait(_parse('job', 'wait', job.id)) == 0
    assert capsys.readouterr().out.startswith('Job %s done: 1 cached'
                                              % job.id)
    assert manage.job_show(_parse('job', 'show', job.id)) == 0
    assert '%s u-h2 cell1 %s cached file 65536 ' % (job.id, image_id) in \
        capsys.readouterr().out

    assert manage.job_list(_parse('job', 'list', '--aggregate', 'one',
                                  '--json')) == 0
    listed = json.loads(capsys.readouterr().out)
    assert job.id in [j['id'] for j in listed]
    assert all(j['aggregate'] == 'one' for j in listed)

    assert manage.job_list(_parse('job', 'list', '--limit', '1')) == 0
    assert 'cached' in capsys.readouterr().out


def test_job_show_of_a_failed_job_exits_1(bus, capsys):
    bad = bus.add_image(bad_hash=True)
    job = bus.wait(bus.api.cache_images({}, 'one', [bad]).id)
    assert manage.job_show(_parse('job', 'show', job.id)) == 1
    assert 'sha512 mismatch' in capsys.readouterr().out


def test_unknown_job_is_typed(bus):
    with pytest.raises(exception.JobNotFound):
        manage.job_show(_parse('job', 'show', 'no-such-job'))
