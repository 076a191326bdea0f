"""Heartbeats handled out of order: the goodbye is the agent's last word.

Casts from one agent may be handled in another order than sent (the
conductor's threads, several conductors); the agent's send time keeps a
heartbeat sent before the goodbye from reviving the stopped agent.
"""

from __future__ import annotations

import datetime

import pytest

from precache import objects
from precache.db.registry import AgentRecord, RegistryStore

SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def registry(store) -> RegistryStore:
    return RegistryStore(store.engine)


def _beat(registry: RegistryStore, sent_at, now, stopping=False,
          free_bytes=None):
    return registry.heartbeat(
        AgentRecord(host='h1', rpc_version='1.0', free_bytes=free_bytes),
        now=now, stopping=stopping, sent_at=sent_at)


def test_a_heartbeat_sent_before_the_goodbye_does_not_revive(registry):
    t0 = objects.utcnow()
    _beat(registry, t0, t0, free_bytes=1)
    bye = _beat(registry, t0 + SECOND, t0 + 2 * SECOND, stopping=True,
                free_bytes=2)
    assert not bye.stale
    late = _beat(registry, t0 + SECOND / 2, t0 + 3 * SECOND, free_bytes=3)
    assert late.stale
    assert late.before == t0 + 2 * SECOND
    row = registry.get('h1')
    assert row.stopped_at == t0 + 2 * SECOND
    assert row.last_seen == t0 + 2 * SECOND
    assert row.free_bytes == 2


def test_a_tie_with_the_goodbye_is_the_goodbye(registry):
    t0 = objects.utcnow()
    _beat(registry, t0, t0, stopping=True)
    assert _beat(registry, t0, t0 + SECOND).stale
    assert registry.get('h1').stopped_at == t0


def test_a_heartbeat_sent_after_the_goodbye_revives(registry):
    """The agent restarted: its first heartbeat clears the goodbye."""
    t0 = objects.utcnow()
    _beat(registry, t0, t0, stopping=True)
    assert not _beat(registry, t0 + SECOND, t0 + 2 * SECOND).stale
    row = registry.get('h1')
    assert row.stopped_at is None
    assert row.last_seen == t0 + 2 * SECOND


def test_without_send_times_heartbeats_count_as_received(registry):
    """Agents (and rows) that predate the send time: as before."""
    t0 = objects.utcnow()
    _beat(registry, t0 + SECOND, t0, stopping=True)
    assert not _beat(registry, None, t0 + SECOND).stale
    assert registry.get('h1').stopped_at is None
    _beat(registry, None, t0 + 2 * SECOND, stopping=True)
    assert not _beat(registry, t0, t0 + 3 * SECOND).stale
    assert registry.get('h1').stopped_at is None


def test_only_a_goodbye_is_guarded(registry):
    """Heartbeats of a running agent handled out of order: each counts
    (the row is at worst one beat old)."""
    t0 = objects.utcnow()
    _beat(registry, t0 + SECOND, t0)
    assert not _beat(registry, t0, t0 + SECOND).stale
    assert registry.get('h1').stopped_at is None


def test_a_clock_set_back_across_a_restart_revives(registry):
    """Older than any heartbeat still in flight: not a straggler but a
    restarted agent whose clock went back; it is alive."""
    t0 = objects.utcnow()
    _beat(registry, t0, t0, stopping=True)
    hour_before = t0 - 3600 * SECOND
    assert not registry.heartbeat(
        AgentRecord(host='h1', rpc_version='1.0'), now=t0 + SECOND,
        sent_at=hour_before, max_lag=84).stale
    assert registry.get('h1').stopped_at is None
