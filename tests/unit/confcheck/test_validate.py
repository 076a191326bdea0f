"""The start-up check, on files written as an operator writes them."""

from __future__ import annotations

from typing import Any

import pytest
from keystonemiddleware import auth_token
from oslo_config import cfg, types

from precache import exception, plugins, service
from precache.conf import MODULES
from precache.confcheck import validate


def load(tmp_path: Any, *texts: str) -> tuple[cfg.ConfigOpts, list[str]]:
    """A fresh ConfigOpts that read these files, in order."""
    paths = []
    for number, text in enumerate(texts):
        path = tmp_path / ('precache-%d.conf' % number)
        path.write_text(text)
        paths.append(str(path))
    return load_files(paths), paths


def load_files(paths: list[str]) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every option precache-api has too."""
    conf = cfg.ConfigOpts()
    for module in MODULES:
        # NOTE: a group of its own: oslo.config's copy of a registered
        # OptGroup shares its options with the module's, so options an
        # auth plugin registers here would show up in the global CONF.
        if hasattr(module, 'group'):
            conf.register_group(cfg.OptGroup(module.group.name))
        module.register_opts(conf)
    service.register_library_opts(conf)
    for group, options in auth_token.list_opts():
        conf.register_opts(options, group=group)
    conf([arg for path in paths for arg in ('--config-file', path)],
         project='precache', default_config_files=[])
    return conf


def refusal(conf: cfg.ConfigOpts, prog: str = 'precache-manage') -> str:
    with pytest.raises(exception.ConfigInvalid) as info:
        validate.check(conf, prog)
    return info.value.message


def test_a_bad_value_names_the_file_that_set_it(tmp_path):
    # oslo.config's own location names the last file with the section.
    conf, (first, second) = load(
        tmp_path, '[conductor]\nmax_concurrent_hosts = ten\n',
        '[conductor]\nmax_concurrent_jobs = 3\n')
    assert refusal(conf) == (
        "invalid value 'ten' for [conductor] max_concurrent_hosts in %s: "
        "must be an integer" % first)


def test_schedule_groups_are_checked_too(tmp_path):
    conf, (path,) = load(
        tmp_path, '[schedules]\nnames = nightly\n[schedule:nightly]\n'
                  'cron = 0 2 * * *\nmax_concurrent_hosts = 0\n')
    assert refusal(conf) == (
        "invalid value '0' for [schedule:nightly] max_concurrent_hosts in "
        "%s: must be at least 1" % path)


@pytest.mark.parametrize('type_, text, reason', [
    (types.Integer(min=2), 'two', 'must be an integer'),
    (types.Integer(min=2), '1', 'must be at least 2'),
    (types.Integer(min=1, max=64), '65', 'must be between 1 and 64'),
    (types.Float(max=0.9), '1.5', 'must be at most 0.9'),
    (types.Float(), 'fast', 'must be a number'),
    (types.Boolean(), 'maybe', 'must be true or false'),
    (types.Port(), '70000', 'must be between 0 and 65535'),
    (types.String(choices=['keystone', 'noauth']), 'keystne',
     'must be one of keystone, noauth (did you mean keystone?)'),
    (types.HostAddress(), 'not a host!', 'must be an IP address or a host '
                                         'name'),
])
def test_expected_says_what_a_value_must_be(type_, text, reason):
    assert validate.expected(type_, text) == reason


def test_scrub_replaces_the_location_repr():
    raw = ("Value for option port from LocationInfo(location=<Locations."
           "user: (4, True)>, detail='/etc/precache/precache.conf') is not "
           "valid: bad")
    assert validate.scrub(raw) == ('Value for option port in '
                                   '/etc/precache/precache.conf is not '
                                   'valid: bad')


def test_a_shared_file_raises_no_false_warning(tmp_path):
    """Every service's sections, auth plugins' own options included."""
    conf, _ = load(tmp_path, '''
[DEFAULT]
transport_url = rabbit://precache:secret@mq:5672/precache
debug = true
[keystone_authtoken]
www_authenticate_uri = https://keystone:5000
auth_type = password
auth_url = https://keystone:5000/v3
username = precache
password = secret
project_name = service
user_domain_name = Default
project_domain_name = Default
memcached_servers = cache:11211
[glance]
auth_section = service_auth
[service_auth]
auth_type = v3applicationcredential
auth_url = https://keystone:5000/v3
application_credential_id = 0123
application_credential_secret = secret
[nova]
auth_type = password
auth_url = https://keystone:5000/v3
user_name = precache
[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 30
[oslo_policy]
policy_file = policy.yaml
[ceph]
other_clusters = edge
[ceph:edge]
conf_file = /etc/ceph/edge.conf
[schedules]
names = nightly
[schedule:nightly]
cron = 0 2 * * *
''')
    assert validate.unknown_names(conf, validate.Files(conf)) == []


def test_unknown_names_get_the_nearest_known_one(tmp_path):
    conf, (path,) = load(tmp_path, '''
[DEFAULT]
max_concurrent_hosts = 4
[condutor]
max_concurrent_jobs = 2
[keystone_authtoken]
auth_type = password
usernme = precache
[schedule:nighty]
cron = 0 2 * * *
[schedules]
names = nightly
''')
    assert validate.unknown_names(conf, validate.Files(conf)) == [
        'unknown option max_concurrent_hosts in [DEFAULT] of %s: ignored '
        '(it belongs in [conductor])' % path,
        'unknown section [condutor] in %s: ignored (did you mean '
        '[conductor]?)' % path,
        'unknown option usernme in [keystone_authtoken] of %s: ignored '
        '(did you mean username?)' % path,
        'unknown section [schedule:nighty] in %s: ignored (did you mean '
        '[schedule:nightly]?)' % path,
    ]


def test_keystone_api_needs_the_plugin_options(tmp_path):
    conf, (path,) = load(tmp_path, '''
[keystone_authtoken]
auth_type = password
auth_url = https://keystone:5000/v3
username = precache
''')
    assert refusal(conf, 'precache-api') == (
        '[keystone_authtoken] auth_type = password in %s also needs '
        'password ([api] auth_strategy = keystone (the default; not set in '
        '%s))' % (path, path))


def test_an_unknown_auth_plugin_is_named(tmp_path):
    conf, (path,) = load(tmp_path, '[api]\nauth_strategy = keystone\n'
                                   '[keystone_authtoken]\n'
                                   'auth_type = pasword\n')
    assert refusal(conf, 'precache-api') == (
        "invalid value 'pasword' for [keystone_authtoken] auth_type in %s: "
        "not an auth plugin (did you mean password?)" % path)


def test_agent_files(tmp_path):
    conf, (path,) = load(tmp_path, '[agent]\ninstances_path = %s\n'
                                   '[ceph]\nconf_file = %s\n' % (
                                       tmp_path, tmp_path / 'ceph.conf'))
    assert refusal(conf, 'precache-agent') == (
        '[ceph] conf_file = %s in %s: no such file'
        % (tmp_path / 'ceph.conf', path))


def test_a_service_token_needs_service_user_credentials(tmp_path):
    (tmp_path / 'inventory.yaml').write_text('aggregates: []')
    (tmp_path / 'catalog.json').write_text('[]')
    conf, (path,) = load(tmp_path, (
        '[inventory]\nstatic_file = %s/inventory.yaml\n'
        '[image_service]\nlocal_catalog = %s/catalog.json\n'
        '[service_user]\nsend_service_user_token = true\n')
        % (tmp_path, tmp_path))
    assert refusal(conf, 'precache-conductor') == (
        '[service_user] send_service_user_token = true in %s needs '
        '[service_user] auth_type and its options (e.g. auth_type = '
        'password with auth_url, username, password, project_name, '
        'user_domain_name and project_domain_name); not set in '
        '[service_user] of %s' % (path, path))


def _without(monkeypatch, point, name: str) -> None:
    """As if the package lacked the entry point ``name`` of ``point``."""
    real = plugins.PlugPoint.names
    monkeypatch.setattr(plugins.PlugPoint, 'names', lambda self: [
        n for n in real(self) if self is not point or n != name])


def test_a_store_that_is_not_installed_is_named(tmp_path, monkeypatch):
    _without(monkeypatch, plugins.AGENT_STORES, 'rbd')
    conf, (path,) = load(tmp_path, '[agent]\ninstances_path = %s\n'
                                   'store = rbd\n' % tmp_path)
    assert refusal(conf, 'precache-agent') == (
        "unknown store 'rbd' in [agent] store in %s: valid choices are "
        "file" % path)


@pytest.mark.parametrize('point,section', [
    (plugins.INVENTORIES, 'inventory'),
    (plugins.IMAGE_SERVICES, 'image_service'),
])
def test_a_conductor_driver_that_is_not_installed_is_named(
        tmp_path, monkeypatch, point, section):
    conf, (path,) = load(tmp_path, '[%s]\ndriver = %s\n' % (
        section, conf_default(section)))
    _without(monkeypatch, point, conf_default(section))
    message = refusal(conf, 'precache-conductor')
    assert message.startswith("unknown %s '%s' in [%s] driver in %s: "
                              "valid choices are " % (
                                  point.what, conf_default(section),
                                  section, path))
    assert '\n' not in message


def conf_default(section: str) -> str:
    return {'inventory': 'static', 'image_service': 'local'}[section]
