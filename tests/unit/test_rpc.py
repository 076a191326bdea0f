"""The message bus helpers (no broker needed)."""

from __future__ import annotations

import uuid

from kombu.transport import memory

from precache import rpc
from precache.conf import CONF


def _memory_url() -> str:
    return 'kombu+memory:///rpc-%s' % uuid.uuid4().hex[:8]


def test_one_transport_per_url():
    url = _memory_url()
    first = rpc.get_transport(CONF, url)
    assert rpc.get_transport(CONF, url) is first
    assert rpc.get_transport(CONF, _memory_url()) is not first


def test_transport_url_from_configuration(conf):
    url = _memory_url()
    conf.config(transport_url=url)
    assert rpc.get_transport(CONF) is rpc.get_transport(CONF, url)


def test_memory_transport_does_not_spin():
    rpc.get_transport(CONF, _memory_url())
    transport = object.__new__(memory.Transport)
    transport.polling_interval = 0
    assert transport.polling_interval == rpc.MEMORY_POLLING_INTERVAL > 0


def test_in_process_transports_are_always_reachable():
    rpc.check_reachable(CONF, 'kombu+memory:////')
    rpc.check_reachable(CONF, 'fake://')


def test_remote_exceptions_are_ours():
    assert rpc.ALLOWED_EXMODS == ['precache.exception']


def test_request_context_drops_empty_values():
    assert rpc.request_context(request_id='req-1', job_id=None) == \
        {'request_id': 'req-1'}
    assert rpc.request_context() == {}
