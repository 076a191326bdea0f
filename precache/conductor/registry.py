"""The agent registry: which agents are alive, where, and what they can do.

Agents cast a heartbeat every ``[registry] heartbeat_interval`` seconds
(precache.agent.heartbeat); the conductor keeps each one's latest report
in the job store. Before a host is called, :meth:`Registry.status` says
whether to skip it: silent for longer than ``agent_down_time`` →
``agent down``; an RPC version too old for the calls the conductor makes
→ ``agent too old``. A host that never reported is called all the same
(its ping decides): a registry that is still filling up after an upgrade
must not stop every job. An agent heard within one heartbeat interval
needs no ping at all: its liveness is already known.

Those answers come from one read of the whole registry, reused for
``[registry] status_cache_time`` (a second): a fan-out asks for every
host just before calling it, and accepting a job asks for the cell of
every host Nova's inventory leaves without one; one query per host was
a tenth of the conductor's CPU during a fan-out. Heartbeats this
conductor receives update that read at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from precache import objects
from precache.conductor.inventory import Aggregate, Inventory
from precache.conf import CONF
from precache.db.registry import AgentRecord, RegistryStore

LOG = logging.getLogger(__name__)

#: The agent RPC version the conductor sends cache_images at.
REQUIRED_AGENT_RPC_VERSION = '1.0'


def _compatible(have: str | None, need: str) -> bool:
    """oslo.messaging's rule: same major, at least the minor needed."""
    try:
        have_major, have_minor = (int(p) for p in (have or '').split('.'))
        need_major, need_minor = (int(p) for p in need.split('.'))
    except ValueError:
        return False
    return have_major == need_major and have_minor >= need_minor


@dataclasses.dataclass(frozen=True)
class AgentStatus:
    """What the conductor knows of a host's agent before calling it."""

    #: Why not to call the host (it ends ``skipped`` with this), or None.
    skip_reason: str | None = None
    #: Heard within a heartbeat interval: no ping needed before the call.
    heard_recently: bool = False


class Registry:
    def __init__(self, store: RegistryStore,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._monotonic = monotonic
        # NOTE: the last read of every host's liveness and when it was
        # taken; refreshed under the lock, so concurrent lookups share
        # one query.
        self._lock = threading.Lock()
        self._known: dict[str, AgentRecord] = {}
        self._read_at: float | None = None

    def heartbeat(self, report: dict[str, Any]) -> None:
        """Record an agent's report (the body of its heartbeat cast)."""
        record = AgentRecord.from_dict(
            {k: v for k, v in report.items()
             if k not in ('first_seen', 'last_seen', 'stopped_at')})
        stopping = bool(report.get('stopping'))
        now = objects.utcnow()
        before = self.store.heartbeat(record, now=now, stopping=stopping)
        with self._lock:
            # NOTE: written before the lock is taken, so a refresh that
            # runs meanwhile has it too; this only makes it count sooner.
            if self._read_at is not None:
                self._known[record.host] = dataclasses.replace(
                    record, last_seen=now,
                    stopped_at=now if stopping else None)
        if stopping:
            LOG.info('Agent %s is stopping: its hosts are skipped until it '
                     'is back', record.host)
        elif before is None or self._is_down(AgentRecord(record.host,
                                                         last_seen=before)):
            LOG.info('Agent %(host)s (cell %(cell)s, version %(v)s, '
                     'backends %(b)s) is up', {
                         'host': record.host, 'cell': record.cell,
                         'v': record.version,
                         'b': ', '.join(record.backends)})

    @staticmethod
    def _silence(record: AgentRecord) -> float:
        if record.last_seen is None:
            return float('inf')
        return (objects.utcnow() - record.last_seen).total_seconds()

    def _is_down(self, record: AgentRecord) -> bool:
        return self._silence(record) > CONF.registry.agent_down_time

    def _lookup(self, host: str) -> AgentRecord | None:
        """The host's liveness, at most ``status_cache_time`` old."""
        max_age = CONF.registry.status_cache_time
        if not max_age:
            return self.store.get(host)
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= max_age:
                self._known = self.store.liveness()
                self._read_at = now
            return self._known.get(host)

    def status(self, host: str) -> AgentStatus:
        """Whether to call ``host``, and whether its agent needs a ping."""
        record = self._lookup(host)
        if record is None:
            return AgentStatus()
        reason = self.skip_reason(host, record)
        # NOTE: jitter only shortens intervals; a second of slack for
        # the cast and the row update.
        recent = CONF.registry.heartbeat_interval + 1
        return AgentStatus(skip_reason=reason, heard_recently=(
            reason is None and self._silence(record) <= recent))

    def skip_reason(self, host: str,
                    record: AgentRecord | None = None) -> str | None:
        """Why not to call ``host`` now, or None to go ahead."""
        record = record or self._lookup(host)
        if record is None:
            return None
        if record.stopped_at is not None:
            return 'agent stopped (at %s)' % record.stopped_at.isoformat(
                timespec='seconds')
        if self._is_down(record):
            return ('agent down (no heartbeat for %ds, agent_down_time '
                    '%ds)' % (self._silence(record),
                              CONF.registry.agent_down_time))
        if not _compatible(record.rpc_version, REQUIRED_AGENT_RPC_VERSION):
            return ('agent too old (RPC version %s, needs %s)'
                    % (record.rpc_version, REQUIRED_AGENT_RPC_VERSION))
        return None

    def cell_of(self, host: str) -> str | None:
        record = self._lookup(host)
        return record.cell if record else None

    def list(self) -> list[dict[str, Any]]:
        """Every agent with its state (up, down, too old), for operators."""
        agents = []
        for record in self.store.list():
            why = self.skip_reason(record.host, record)
            state = 'up' if why is None else why.split(' (')[0].replace(
                'agent ', '')
            agents.append({**record.to_dict(), 'state': state,
                           'silence': round(self._silence(record), 1)})
        return agents


class RegistryInventory(Inventory):
    """An inventory whose hosts take their cell from the registry.

    The inventory's own answer wins (a static file may say); Nova's
    API knows no cells, so with it the agents' reports decide.
    """

    def __init__(self, inner: Inventory, registry: Registry) -> None:
        self.inner = inner
        self.registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # check() and friends

    def get_aggregate(self, ref: str) -> Aggregate:
        return self.inner.get_aggregate(ref)

    def list_aggregates(self) -> list[Aggregate]:
        return self.inner.list_aggregates()

    def cell_of(self, host: str) -> str | None:
        return self.inner.cell_of(host) or self.registry.cell_of(host)

