"""Contracts between the package, its metadata and its configuration."""

from __future__ import annotations

import configparser
import importlib
import io
import os
import pkgutil
from importlib.metadata import entry_points

import pytest
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg, generator

import precache
import precache.conf
from precache.conf import auth, opts

SETUP_CFG = os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), 'setup.cfg')
GROUPS = ['console_scripts', 'oslo.config.opts', 'oslo.policy.enforcer',
          'oslo.policy.policies', 'precache.agent.backends',
          'precache.agent.stores', 'precache.conductor.inventory',
          'precache.image_services']


def _declared() -> dict[str, dict[str, str]]:
    """Entry points as setup.cfg declares them."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    found: dict[str, dict[str, str]] = {}
    for group, text in parser.items('options.entry_points'):
        if group == parser.default_section:
            continue
        found[group] = {}
        for line in text.strip().splitlines():
            name, _, value = line.partition('=')
            found[group][name.strip()] = value.strip()
    return found


def _installed(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)
            if ep.dist is not None and ep.dist.name == 'precache'}


def test_setup_cfg_declares_the_expected_groups():
    declared = _declared()
    assert sorted(declared) == sorted(GROUPS)
    assert sorted(declared['console_scripts']) == [
        'precache-agent', 'precache-all-in-one', 'precache-api',
        'precache-conductor', 'precache-consumer', 'precache-manage']


@pytest.mark.parametrize('group', GROUPS)
def test_entry_points_installed_and_importable(group):
    installed = _installed(group)
    # The installed metadata is not stale (re-run pip install -e if so).
    assert installed == _declared()[group]
    for ep in entry_points(group=group):
        if ep.name in installed:
            assert callable(ep.load()), ep


def test_list_opts_covers_every_group_registered_by_precache_conf():
    registered: dict[str, set[str]] = {}
    baseline = set(cfg.ConfigOpts())  # oslo.config's own options
    for module_info in pkgutil.iter_modules(precache.conf.__path__):
        if module_info.name == 'opts':
            continue
        module = importlib.import_module('precache.conf.' +
                                         module_info.name)
        fresh = cfg.ConfigOpts()
        module.register_opts(fresh)
        for name in set(fresh) - baseline:
            if isinstance(fresh[name], cfg.ConfigOpts.GroupAttr):
                registered.setdefault(name, set()).update(fresh[name])
            else:
                registered.setdefault('DEFAULT', set()).add(name)
    # NOTE: keystoneauth registers an auth plugin's own options (auth_url,
    # username, ...) when it loads the plugin; the sample lists them.
    dynamic = {opt.dest for opt in auth.add_auth_opts([])} - {
        opt.dest for opt in ks_loading.get_auth_common_conf_options()
        + ks_loading.get_session_conf_options()
        + ks_loading.get_adapter_conf_options(include_deprecated=False)}
    listed = {group: {opt.dest for opt in options} - dynamic
              for group, options in opts.list_opts()
              if group not in opts.TEMPLATE_GROUPS}
    assert listed == registered
    assert set(listed) >= {'DEFAULT', 'agent', 'conductor', 'database',
                           'image_service', 'inventory', 'glance', 'nova',
                           'service_user', 'registry', 'cells'}


def test_list_opts_returns_copies():
    first = opts.list_opts()
    first[0][1].clear()
    assert opts.list_opts()[0][1]


def test_sample_config_generates():
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(['--namespace', 'precache'])
    out = io.StringIO()
    generator.generate(conf, output_file=out)
    text = out.getvalue()
    for section in ('[DEFAULT]', '[agent]', '[conductor]', '[database]',
                    '[image_service]', '[inventory]'):
        assert section in text
    assert '#host = <hostname>' in text
    assert '#max_concurrent_hosts = 10' in text


def test_package_version():
    from precache import version
    assert version.version_string
    assert precache.__name__ == 'precache'
