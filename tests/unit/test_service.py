"""Library options every command reads; what a started service does."""

from __future__ import annotations

import gc
import weakref

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


class Node:
    """Something a weak reference can watch, in a reference cycle."""

    def __init__(self) -> None:
        self.me = self


def test_freeze_startup_objects_leaves_later_garbage_collectable():
    at_startup = Node()
    try:
        service.freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        # A cycle from before is never scanned again, so never freed...
        watch_old = weakref.ref(at_startup)
        del at_startup
        gc.collect()
        assert watch_old() is not None
        # ...while one made afterwards is collected as usual.
        later = Node()
        watch_new = weakref.ref(later)
        del later
        gc.collect()
        assert watch_new() is None
    finally:
        gc.unfreeze()
