"""A configuration the service cannot run with stops it at start-up.

Each case starts the real console script with a file as an operator
would write it, on the real message bus: without the start-up check,
these services would start and fail every job (or every request) later.
"""

from __future__ import annotations

import copy
import os
import socket
from typing import Any

from tests.functional.harness import (
    Cluster,
    Service,
    run_together,
    script,
    write_conf,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def variant(base: Service, folder: str, name: str,
            changes: dict[str, dict[str, Any]],
            drop: tuple[tuple[str, str], ...] = ()) -> str:
    """A copy of ``base``'s config with ``changes``; its path."""
    sections = copy.deepcopy(base.sections)
    for group, options in changes.items():
        sections.setdefault(group, {}).update(options)
    for group, option in drop:
        sections[group].pop(option)
    sections['DEFAULT']['log_file'] = os.path.join(folder, '%s.log' % name)
    return write_conf(os.path.join(folder, '%s.conf' % name), sections)


def assert_refused(done: Any, config: str, expected: str,
                   warnings: tuple[str, ...] = ()) -> None:
    """Exit 2, no traceback, warnings then exactly the expected line."""
    report = 'exit %s\nstdout: %s\nstderr: %s' % (
        done.returncode, done.stdout, done.stderr)
    assert done.returncode == 2, report
    assert 'Traceback' not in done.stdout + done.stderr, report
    assert 'LocationInfo' not in done.stderr, report
    assert done.stderr.splitlines() == [
        *('WARNING: ' + line for line in warnings),
        'ERROR: ' + expected], report
    log = config[:-len('.conf')] + '.log'
    with open(log) as stream:
        assert ' started' not in stream.read()


def test_bad_values_and_missing_files_stop_the_conductor(
        cluster: Cluster, tmp_path: Any) -> None:
    base = cluster.make_conductor()
    folder = str(tmp_path / 'variants')
    os.makedirs(folder)
    missing = str(tmp_path / 'nowhere' / 'catalog.json')
    cases = [
        ({'conductor': {'max_concurrent_hosts': 'ten'}}, (),
         "invalid value 'ten' for [conductor] max_concurrent_hosts in "
         "{conf}: must be an integer"),
        ({'conductor': {'call_monitor_timeout': 1}}, (),
         "invalid value '1' for [conductor] call_monitor_timeout in "
         "{conf}: must be at least 2"),
        ({'image_service': {'local_catalog': missing}}, (),
         '[image_service] local_catalog = %s in {conf}: no such file'
         % missing),
        # The default catalog of a Glance-less conductor is missing too.
        ({}, (('image_service', 'local_catalog'),),
         '[image_service] local_catalog = '
         '/var/lib/precache/images/catalog.json (the default; not set in '
         '{conf}): no such file'),
        ({'inventory': {'driver': 'nova'}}, (),
         '[inventory] driver = nova needs [nova] auth_type and its options '
         '(e.g. auth_type = password with auth_url, username, password, '
         'project_name, user_domain_name and project_domain_name, or '
         'endpoint_override for a service without Keystone); {conf} has '
         'no [nova] section'),
        ({'schedules': {'names': 'nightly'},
          'schedule:nighty': {'cron': '0 2 * * *', 'aggregates': 'all',
                              'images': 'x'}}, (),
         '[schedules] names = nightly in {conf} lists nightly, but no file '
         'has a section [schedule:nightly] (did you mean '
         '[schedule:nighty]?)'),
    ]
    configs = [variant(base, folder, 'case%d' % number, changes, drop)
               for number, (changes, drop, _) in enumerate(cases)]
    results = run_together(
        [[script('precache-conductor'), '--config-file', config]
         for config in configs], timeout=120)
    for done, config, (_, _, expected) in zip(results, configs, cases,
                                              strict=True):
        warnings: tuple[str, ...] = ()
        if 'nightly' in expected:
            warnings = ('unknown section [schedule:nighty] in %s: ignored '
                        '(did you mean [schedule:nightly]?)' % config,)
        assert_refused(done, config, expected.format(conf=config),
                       warnings)


def test_api_with_keystone_needs_keystone_authtoken(
        cluster: Cluster, tmp_path: Any) -> None:
    port = free_port()
    config = write_conf(str(tmp_path / 'api.conf'), {
        'DEFAULT': {'transport_url': cluster.transport_url,
                    'log_file': str(tmp_path / 'api.log')},
        'api': {'host_ip': '127.0.0.1', 'port': port}})
    [done] = run_together([[script('precache-api'), '--config-file',
                            config]], timeout=120)
    assert_refused(
        done, config,
        '[api] auth_strategy = keystone (the default; not set in %s) needs '
        '[keystone_authtoken] auth_type and its options (e.g. auth_type = '
        'password with auth_url, username, password, project_name, '
        'user_domain_name and project_domain_name); %s has no '
        '[keystone_authtoken] section' % (config, config))
    # Nothing answers on its port.
    with socket.socket() as sock:
        assert sock.connect_ex(('127.0.0.1', port)) != 0


def test_unknown_backend_stops_the_agent(cluster: Cluster) -> None:
    agent = cluster.agent('cmp1', enabled_backends='file, glance-htp')
    [done] = run_together([[script('precache-agent'), '--config-file',
                            agent.config]], timeout=120)
    assert_refused(
        done, agent.config,
        "invalid value 'glance-htp' in [agent] enabled_backends in %s: "
        "known backends are file, glance-http, rbd-clone, rbd-export (did "
        "you mean glance-http?)" % agent.config)


def test_misspelt_names_are_warned_about_and_the_conductor_starts(
        cluster: Cluster) -> None:
    """Unknown sections and options are ignored, but never silently."""
    base = cluster.make_conductor()
    base.sections['conductor']['max_concurent_hosts'] = 4
    base.sections['condutor'] = {'max_concurrent_jobs': 2}
    base.sections['keystone_authtoken'] = {
        # A shared file: the API's section, with its plugin's options,
        # is no typo for the conductor.
        'auth_type': 'password', 'auth_url': 'http://keystone:5000/v3',
        'username': 'precache', 'password': 'secret',
        'project_name': 'service', 'user_domain_name': 'Default',
        'project_domain_name': 'Default'}
    base.rewrite_config('glance', auth_type='v3applicationcredential',
                        application_credential_id='0123',
                        application_credential_secret='secret')
    base.start().wait_ready()
    warnings = [line.split(' Configuration: ', 1)[1]
                for line in base.log().splitlines()
                if ' Configuration: ' in line]
    assert warnings == [
        'unknown option max_concurent_hosts in [conductor] of %s: ignored '
        '(did you mean max_concurrent_hosts?)' % base.config,
        'unknown section [condutor] in %s: ignored (did you mean '
        '[conductor]?)' % base.config]
    # The log goes to a file, so the terminal is told too.
    assert base.output().splitlines()[:2] == [
        'WARNING: ' + line for line in warnings]


def test_bad_value_of_a_command_line_option_in_a_file(
        cluster: Cluster, tmp_path: Any) -> None:
    """``debug``, ``use_json``, ...: options oslo.config also takes on the
    command line, and checks while parsing; refused like every other bad
    value, in one line naming the file, exit 2."""
    base = cluster.make_conductor()
    folder = str(tmp_path / 'variants')
    os.makedirs(folder)
    conductor = variant(base, folder, 'conductor',
                        {'DEFAULT': {'debug': 'maybe'}})
    # A second file sets it for precache-manage: that file is named.
    extra = write_conf(str(tmp_path / 'debug.conf'),
                       {'DEFAULT': {'debug': 'maybe'}})
    # And in a --config-dir, another such option.
    conf_d = tmp_path / 'precache.conf.d'
    conf_d.mkdir()
    in_dir = write_conf(str(conf_d / '10-logging.conf'),
                        {'DEFAULT': {'use_json': 'perhaps'}})
    agent = cluster.agent('cmp1')
    results = run_together([
        [script('precache-conductor'), '--config-file', conductor],
        [script('precache-manage'), '--config-file', cluster.client_config,
         '--config-file', extra, 'job', 'list'],
        [script('precache-agent'), '--config-file', agent.config,
         '--config-dir', str(conf_d)],
    ], timeout=120)
    # What oslo.config says of a bad command line still comes through.
    [bogus] = run_together([[script('precache-conductor'), '--config-file',
                             conductor, '--bogus']], timeout=60)
    assert bogus.returncode == 2, bogus.stderr
    assert bogus.stderr.splitlines()[-1] == (
        'precache-conductor: error: unrecognized arguments: --bogus')
    expected = [
        "invalid value 'maybe' for [DEFAULT] debug in %s: must be true or "
        "false" % conductor,
        "invalid value 'maybe' for [DEFAULT] debug in %s: must be true or "
        "false" % extra,
        "invalid value 'perhaps' for [DEFAULT] use_json in %s: must be "
        "true or false" % in_dir,
    ]
    for done, line in zip(results, expected, strict=True):
        report = 'exit %s\nstdout: %s\nstderr: %s' % (
            done.returncode, done.stdout, done.stderr)
        assert done.returncode == 2, report
        assert done.stdout == '', report
        assert done.stderr.splitlines() == ['ERROR: ' + line], report
    # Stopped before logging was set up: the conductor wrote no log.
    assert not os.path.exists(conductor[:-len('.conf')] + '.log')
