"""The command line's failures: one line, the documented exit code."""

from __future__ import annotations

import os
import socket
import uuid

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
