"""Library options every command reads."""

from __future__ import annotations

from oslo_config import cfg

from precache import service


def test_register_library_opts_on_a_fresh_conf():
    conf = cfg.ConfigOpts()
    service.register_library_opts(conf)
    service.register_library_opts(conf)  # idempotent
    conf([], default_config_files=[])
    assert conf.control_exchange == 'precache'
    assert conf.debug is False
    assert 'oslo_messaging_rabbit' in conf
    assert 'heartbeat_timeout_threshold' in conf.oslo_messaging_rabbit
