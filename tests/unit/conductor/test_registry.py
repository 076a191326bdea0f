"""What the conductor knows of an agent before calling it.

A real registry on SQLite; the heartbeats are written as the conductor
that receives them writes them, or straight into the store as another
conductor's would be.
"""

from __future__ import annotations

import datetime
import re

import pytest

from precache import objects
from precache.conductor.registry import AgentStatus, Registry
from precache.db.registry import AgentRecord, RegistryStore


@pytest.fixture
def store(own_store) -> RegistryStore:
    return RegistryStore(own_store.engine)


class CountingStore:
    """The real store, counting the reads a lookup makes."""

    def __init__(self, inner: RegistryStore) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, host):
        self.reads += 1
        return self.inner.get(host)

    def liveness(self):
        self.reads += 1
        return self.inner.liveness()


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _listening_for(registry: Registry, seconds: float) -> Registry:
    """As if the conductor's servers started ``seconds`` ago."""
    registry.listening(objects.utcnow() - datetime.timedelta(
        seconds=seconds))
    return registry


def test_registry_status(store, conf):
    conf.config(group='registry', heartbeat_interval=10, agent_down_time=30)
    registry = _listening_for(Registry(store), 3600)
    now = objects.utcnow()

    def seen(host: str, seconds_ago: float, rpc_version: str = '1.0'):
        store.heartbeat(AgentRecord(host=host, rpc_version=rpc_version),
                        now=now - datetime.timedelta(seconds=seconds_ago))

    seen('fresh', 3)
    seen('late', 15)
    seen('down', 45)
    seen('old', 1, rpc_version='0.9')
    assert registry.status('fresh') == AgentStatus(heard_recently=True)
    assert registry.status('late') == AgentStatus(heard_recently=False)
    assert registry.status('never') == AgentStatus()
    assert registry.status('down').skip_reason.startswith('agent down')
    assert not registry.status('down').heard_recently
    assert registry.status('old').skip_reason == (
        'agent too old (RPC version 0.9, needs 1.0)')

    # A clean stop's goodbye: skipped at once; the next heartbeat clears it.
    registry.heartbeat({'host': 'fresh', 'rpc_version': '1.0',
                        'stopping': True})
    gone = registry.status('fresh')
    assert gone.skip_reason.startswith('agent stopped (at ')
    assert not gone.heard_recently
    assert [a['state'] for a in registry.list()
            if a['host'] == 'fresh'] == ['stopped']
    registry.heartbeat({'host': 'fresh', 'rpc_version': '1.0'})
    assert registry.status('fresh') == AgentStatus(heard_recently=True)


def test_rows_a_starting_conductor_has_not_heard_are_only_doubts(store,
                                                                  conf):
    """A conductor (re)started: rows from before are pinged, not trusted.

    The agents' heartbeats while no conductor listened are lost, so a
    row's "down", "stopped" or "too old" may be out of date; once the
    conductor has listened for agent_down_time, it is not.
    """
    conf.config(group='registry', heartbeat_interval=10, agent_down_time=30)
    registry = _listening_for(Registry(store), 5)
    now = objects.utcnow()
    ago = datetime.timedelta(seconds=600)
    store.heartbeat(AgentRecord(host='down', rpc_version='1.0'),
                    now=now - ago)
    store.heartbeat(AgentRecord(host='bye', rpc_version='1.0'),
                    now=now - ago, stopping=True)
    store.heartbeat(AgentRecord(host='old', rpc_version='0.9'),
                    now=now - datetime.timedelta(seconds=15))
    store.heartbeat(AgentRecord(host='old-now', rpc_version='0.9'), now=now)

    down = registry.status('down')
    # NOTE: 601s on a machine slow enough to take a second meanwhile.
    assert (down.skip_reason, down.doubt) == (None, 'agent down')
    assert re.fullmatch(r'no heartbeat for 60[01]s', down.evidence)
    assert re.fullmatch(
        r'agent down \(no heartbeat for 60[01]s, no answer to ping within '
        r'2s\)', down.unanswered('no answer to ping within 2s'))
    bye = registry.status('bye')
    assert (bye.skip_reason, bye.doubt, bye.heard_recently) == (
        None, 'agent stopped', False)
    assert bye.evidence == 'at %s' % (now - ago).isoformat(
        timespec='seconds')
    assert registry.status('old') == AgentStatus(
        doubt='agent too old', evidence='RPC version 0.9, needs 1.0')
    # Heard just now, its version is known.
    assert registry.status('old-now') == AgentStatus(
        skip_reason='agent too old (RPC version 0.9, needs 1.0)',
        heard_recently=True)
    # A host never heard of: pinged, and a failed ping says just that.
    assert registry.status('never').unanswered(
        'no answer to ping within 2s') == (
        'agent not responding (no answer to ping within 2s)')

    # A goodbye this conductor listened to is trusted at once.
    registry.heartbeat({'host': 'down', 'rpc_version': '1.0',
                        'stopping': True})
    gone = registry.status('down')
    assert gone.skip_reason.startswith('agent stopped (at ')
    assert gone.doubt is None

    # Listening for longer than agent_down_time: every row is trusted.
    _listening_for(registry, 31)
    assert registry.status('bye').skip_reason.startswith(
        'agent stopped (at ')
    assert registry.status('old').skip_reason == (
        'agent too old (RPC version 0.9, needs 1.0)')
    store.heartbeat(AgentRecord(host='dead', rpc_version='1.0'),
                    now=now - ago)
    registry = _listening_for(Registry(store), 31)
    assert re.fullmatch(
        r'agent down \(no heartbeat for 60[01]s, agent_down_time 30s\)',
        registry.status('dead').skip_reason)

    # A registry no service started never trusts a row.
    assert Registry(store).status('dead').doubt == 'agent down'


def test_one_read_answers_every_host_for_a_while(store, conf):
    conf.config(group='registry', status_cache_time=5)
    counting, clock = CountingStore(store), Monotonic()
    registry = _listening_for(Registry(counting, monotonic=clock), 3600)
    for n in range(20):
        store.heartbeat(AgentRecord(host='h%d' % n, rpc_version='1.0',
                                    cell='c%d' % (n % 2)))
    assert all(registry.status('h%d' % n).heard_recently
               for n in range(20))
    assert registry.cell_of('h3') == 'c1'
    assert registry.status('unknown') == AgentStatus()
    assert counting.reads == 1

    # Another conductor receives a goodbye: it counts once the read ages.
    store.heartbeat(AgentRecord(host='h1', rpc_version='1.0'),
                    stopping=True)
    clock.now += 4.9
    assert registry.status('h1').skip_reason is None
    clock.now += 0.1
    assert registry.status('h1').skip_reason.startswith('agent stopped')
    assert counting.reads == 2

    # A goodbye or a heartbeat this conductor receives counts at once.
    registry.heartbeat({'host': 'h2', 'rpc_version': '1.0',
                        'stopping': True})
    assert registry.status('h2').skip_reason.startswith('agent stopped')
    registry.heartbeat({'host': 'new', 'rpc_version': '1.0', 'cell': 'c9'})
    assert registry.status('new') == AgentStatus(heard_recently=True)
    assert registry.cell_of('new') == 'c9'
    assert counting.reads == 2


def test_a_cache_time_of_zero_reads_per_host(store, conf):
    conf.config(group='registry', status_cache_time=0)
    counting = CountingStore(store)
    registry = _listening_for(Registry(counting, monotonic=Monotonic()),
                              3600)
    store.heartbeat(AgentRecord(host='h1', rpc_version='1.0'))
    assert registry.status('h1').heard_recently
    store.heartbeat(AgentRecord(host='h1', rpc_version='1.0'),
                    stopping=True)
    assert registry.status('h1').skip_reason.startswith('agent stopped')
    assert counting.reads == 2


def test_liveness_reads_only_what_deciding_needs(store):
    now = objects.utcnow()
    store.heartbeat(AgentRecord(host='h1', cell='c1', version='9.9',
                                rpc_version='1.2', backends=['file'],
                                free_bytes=10), now=now)
    [record] = store.liveness().values()
    assert (record.host, record.cell, record.rpc_version, record.last_seen,
            record.stopped_at) == ('h1', 'c1', '1.2', now, None)
    assert record.backends == [] and record.free_bytes is None
    assert isinstance(record.last_seen, datetime.datetime)


def test_a_heartbeat_handled_after_the_goodbye_does_not_revive(store, conf):
    """Sent before the goodbye, handled after it: the agent stays stopped,
    in the cached read and in the row alike."""
    conf.config(group='registry', heartbeat_interval=10, agent_down_time=30)
    registry = _listening_for(Registry(store), 0)
    sent = objects.utcnow()
    registry.heartbeat({'host': 'h1', 'rpc_version': '1.0',
                        'sent_at': sent.isoformat()})
    registry.status('h1')  # the read is cached from here on
    registry.heartbeat({'host': 'h1', 'rpc_version': '1.0', 'stopping': True,
                        'sent_at': (sent + datetime.timedelta(
                            seconds=2)).isoformat()})
    registry.heartbeat({'host': 'h1', 'rpc_version': '1.0',
                        'sent_at': (sent + datetime.timedelta(
                            seconds=1)).isoformat()})
    assert registry.status('h1').skip_reason.startswith('agent stopped (at ')
    assert store.get('h1').stopped_at is not None
    # Restarted: its next heartbeat is newer than the goodbye.
    registry.heartbeat({'host': 'h1', 'rpc_version': '1.0',
                        'sent_at': (sent + datetime.timedelta(
                            seconds=3)).isoformat()})
    assert registry.status('h1') == AgentStatus(heard_recently=True)
