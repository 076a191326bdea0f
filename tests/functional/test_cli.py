"""The command line's failures: one line, the documented exit code."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time
import uuid

from precache.db.api import JobStore
from tests.functional.harness import (
    Cluster,
    run_together,
    script,
    write_conf,
)


def assert_one_line_error(done, code: int, *fragments: str) -> None:
    report = 'exit %s\nstdout: %s\nstderr: %s' % (
        done.returncode, done.stdout, done.stderr)
    assert done.returncode == code, report
    assert 'Traceback' not in done.stdout + done.stderr, report
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, report
    assert lines[0].startswith('ERROR: '), report
    for fragment in fragments:
        assert fragment in lines[0], report


def test_bad_requests_exit_2_before_any_host(cluster: Cluster) -> None:
    image = cluster.make_image('epsilon')
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    cluster.start([])
    unknown_aggregate = cluster.host('nowhere')
    unknown_image = str(uuid.uuid4())

    def cache(*args: str) -> list[str]:
        return [script('precache-manage'), '--config-file',
                cluster.client_config, 'cache', '--wait', '--json', *args]

    cases = [
        (cache('--aggregate', unknown_aggregate, '--image', image.id),
         ['Aggregate %s could not be found.' % unknown_aggregate]),
        (cache('--aggregate', aggregate, '--image', image.id,
               '--image', unknown_image),
         ['Image %s could not be found.' % unknown_image]),
        # NOTE: the same id in other letter case is still a duplicate.
        (cache('--aggregate', aggregate, '--image', image.id,
               '--image', image.id.upper()),
         ['duplicate image(s): %s' % image.id]),
        (cache('--aggregate', aggregate, '--image', 'cirros'),
         ["'cirros' is not an image UUID"]),
    ]
    results = run_together([argv for argv, _ in cases])
    for done, (_, fragments) in zip(results, cases, strict=True):
        assert_one_line_error(done, 2, *fragments)
        assert done.stdout == ''

    # Refused before any job was recorded or any agent contacted.
    assert cluster.api.list_jobs({}, aggregate=aggregate) == []
    assert cluster.conductor.count('accepted') == 0
    assert cluster.conductor.count('RPC cache_images called') \
        == len(cases)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_unreachable_broker_is_one_line_and_nonzero(tmp_path) -> None:
    """Services and the CLI name the message bus and exit non-zero."""
    port = closed_port()
    # NOTE: a configuration valid in all else: that is checked first.
    (tmp_path / 'catalog.json').write_text('[]')
    (tmp_path / 'inventory.yaml').write_text('aggregates: []')
    conf = write_conf(str(tmp_path / 'precache.conf'), {
        'inventory': {'static_file': str(tmp_path / 'inventory.yaml')},
        'image_service': {'local_catalog': str(tmp_path / 'catalog.json')},
        'DEFAULT': {'host': 'lonely',
                    'transport_url': 'rabbit://guest:guest@127.0.0.1:%d/'
                                     % port,
                    'state_path': str(tmp_path / 'state'),
                    'log_file': str(tmp_path / 'precache.log')},
        'agent': {'instances_path': str(tmp_path / 'instances')},
        'database': {'connection': 'sqlite:///%s'
                     % (tmp_path / 'precache.sqlite')}})
    commands = [
        [script('precache-conductor'), '--config-file', conf],
        [script('precache-agent'), '--config-file', conf],
        [script('precache-manage'), '--config-file', conf, 'cache',
         '--aggregate', 'compute', '--image', str(uuid.uuid4())],
    ]
    for done in run_together(commands, timeout=60):
        assert_one_line_error(done, 3, 'message bus',
                              '127.0.0.1:%d' % port)
    # Nothing was set up on the way out.
    assert not os.path.exists(tmp_path / 'instances')
    assert not os.path.exists(tmp_path / 'precache.sqlite')


def test_operator_commands_as_cron_runs_them(cluster: Cluster) -> None:
    """Short ids, plain rows with --json's fields, validated options,
    empty aggregates said in one line, options after the command."""
    image = cluster.make_image('zeta')
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    bare = cluster.add_aggregate('bare', [])
    cluster.start(['cmp1'])

    done = cluster.manage('cache', '--aggregate', aggregate, '--image',
                          image.id, '--wait')
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[1]
    short = job_id[:8]

    config = ['--config-file', cluster.client_config]
    manage = script('precache-manage')
    shown, as_json, late_options, bogus, no_hosts, reconciled, \
        unknown = run_together([
            [manage, *config, 'job', 'show', short],
            [manage, 'job', 'show', short, '--json', *config,
             '--timeout', '20'],
            [manage, 'job', 'wait', short.upper(), *config],
            [manage, *config, 'job', 'list', '--state', 'bogus'],
            [manage, *config, 'cache', '--aggregate', bare, '--image',
             image.id, '--wait'],
            [manage, *config, 'reconcile', '--aggregate', bare, '--json'],
            [manage, *config, 'job', 'show', 'feedface'],
        ])

    # The short id the progress bar shows is accepted; off a TTY, one
    # row per (host, image) with the fields --json has.
    assert shown.returncode == 0, shown.stderr
    header, row, *rest = shown.stdout.splitlines()
    assert header == ('JOB HOST CELL IMAGE_ID STATE METHOD BYTES SECONDS '
                      'STARTED_AT FINISHED_AT REASON')
    assert as_json.returncode == 0, as_json.stderr
    [result] = json.loads(as_json.stdout)['results']
    assert row.split() == [
        job_id, cluster.host('cmp1'), '-', image.id, 'cached', 'file',
        str(image.size), str(result['seconds']), result['started_at'],
        result['finished_at'], '-']
    assert rest[-1].startswith('Job %s done: 1 cached' % job_id)

    assert late_options.returncode == 0, late_options.stderr
    assert late_options.stdout.startswith('Job %s done: 1 cached'
                                          % job_id)

    assert bogus.returncode == 2
    assert bogus.stdout == ''
    assert "argument --state: invalid choice: 'bogus'" in bogus.stderr

    assert (no_hosts.returncode, no_hosts.stdout.split(':')[0]) == (
        0, 'aggregate %s has no hosts' % bare), no_hosts.stderr
    assert no_hosts.stdout.count('\n') == 1
    assert reconciled.returncode == 0, reconciled.stderr
    assert json.loads(reconciled.stdout) == {
        'aggregate': bare, 'job': None,
        'reason': 'has no hosts: nothing to do'}

    assert_one_line_error(unknown, 2, 'Job feedface could not be found.')


def run_on_terminal(argv: list[str], timeout: float = 60.0
                    ) -> tuple[int, str]:
    """Run ``argv`` with its stdout on a terminal (a pty, 200 columns),
    as an operator does; its exit code and what it showed, colours out.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ,
                struct.pack('HHHH', 50, 200, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.STDOUT,
                            env=dict(os.environ, COLUMNS='200',
                                     TERM='xterm'))
    os.close(slave)
    shown = b''
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not data:
                break
            shown += data
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = re.sub(r'\x1b\[[0-9;?]*[A-Za-z]', '', shown.decode())
    return code, text.replace('\r\n', '\n')


def test_tables_and_json_name_the_images(cluster: Cluster) -> None:
    """The catalog's names, with the start of each id (names need not be
    unique); an image without a name: its id."""
    named = cluster.make_image('cirros-0.6')
    nameless = cluster.make_image('nameless')
    # NOTE: Glance's name is optional (null when never given).
    cluster.catalog[-1]['name'] = None
    cluster._write_catalog()
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    cluster.start(['cmp1'])

    done = cluster.manage('cache', '--aggregate', aggregate, '--image',
                          named.id, '--image', nameless.id, '--wait',
                          '--json')
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job['image_names'] == {named.id: 'cirros-0.6'}

    code, shown = run_on_terminal([
        script('precache-manage'), '--config-file', cluster.client_config,
        'job', 'show', job['id'][:8]])
    assert code == 0, shown
    header = next(line for line in shown.splitlines()
                  if line.split()[:2] == ['host', 'cell'])
    assert header.split()[2:5] == ['cirros-0.6', '(%s)' % named.id[:8],
                                   nameless.id[:8]], shown
    row = next(line for line in shown.splitlines()
               if cluster.host('cmp1') in line)
    assert row.split()[1:4] == ['-', 'cached', 'cached'], shown

    listed = cluster.manage('job', 'list', '--aggregate', aggregate,
                            '--json')
    assert listed.returncode == 0, listed.stderr
    assert [j['image_names'] for j in json.loads(listed.stdout)] == [
        {named.id: 'cirros-0.6'}]


def test_ambiguous_short_id_names_the_candidates(cluster: Cluster) -> None:
    store = JobStore(cluster.db_url)
    try:
        ids = ['5ca1ab1e-0000-4000-8000-%012d' % n for n in (1, 2)]
        for job_id in ids:
            store.create_job(job_id, 'somewhere', [], [], {},
                             conductor='elsewhere', request_id='req-test')
    finally:
        store.close()
    cluster.start([])
    done = cluster.manage('job', 'show', '5ca1ab1e')
    assert_one_line_error(
        done, 2, 'Job id 5ca1ab1e is ambiguous: it starts %s, %s; give more '
        'characters' % tuple(ids))


def test_version_and_exit_codes() -> None:
    manage = script('precache-manage')
    version, helped = run_together([[manage, '--version'],
                                    [manage, 'job', 'list', '--help']])
    assert version.returncode == 0
    assert version.stdout.startswith('precache-manage ')
    assert helped.returncode == 0
    assert 'exit codes:' in helped.stdout
    assert '--config-file PATH' in helped.stdout
    assert '{pending,running,done,failed,cancelled,expired}' in \
        helped.stdout
