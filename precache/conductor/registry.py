"""The agent registry: which agents are alive, where, and what they can do.

Agents cast a heartbeat every ``[registry] heartbeat_interval`` seconds
(precache.agent.heartbeat); the conductor keeps each one's latest report
in the job store. Before a host is called, :meth:`Registry.status` says
what that report tells. An agent heard within one heartbeat interval
needs no ping: its liveness is known (an RPC version too old for the
calls the conductor makes skips it, ``agent too old``).

An older row is evidence, not truth. Heartbeats are casts, lost when no
conductor listens (all stopped, or started after their agents), so a row
silent for longer than ``agent_down_time`` (``agent down``), a goodbye
(``agent stopped``) or an old version in a stale row skips its host at
once only when a conductor has listened long enough for a live agent's
heartbeat to have cleared it; until then (the first ``agent_down_time``
after a conductor starts) the host is in doubt: pinged, skipped only if
the ping fails too (both reasons), else called. A host that never
reported is pinged likewise: a registry that is still filling up after
an upgrade must not stop every job. Skipping a dead host from its row
costs nothing; pinging it holds a fan-out slot for
``[conductor] agent_ping_timeout``, which is why rows are trusted when
they can be.

Those answers come from one read of the whole registry, reused for
``[registry] status_cache_time`` (a second): a fan-out asks for every
host just before calling it, and accepting a job asks for the cell of
every host Nova's inventory leaves without one; one query per host was
a tenth of the conductor's CPU during a fan-out. Heartbeats this
conductor receives update that read at once.
"""

from __future__ import annotations

import dataclasses
import datetime
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


def too_old(rpc_version: str | None) -> str | None:
    """Why an agent of ``rpc_version`` cannot be called, or None."""
    if _compatible(rpc_version, REQUIRED_AGENT_RPC_VERSION):
        return None
    return ('agent too old (RPC version %s, needs %s)'
            % (rpc_version, REQUIRED_AGENT_RPC_VERSION))


@dataclasses.dataclass(frozen=True)
class AgentStatus:
    """What the conductor knows of a host's agent before calling it."""

    #: Why not to call the host (it ends ``skipped`` with this), or None.
    skip_reason: str | None = None
    #: Heard within a heartbeat interval: no ping needed before the call.
    heard_recently: bool = False
    #: What the registry's row holds against an agent not heard recently
    #: (``agent down``, ``agent stopped``, ``agent too old``), and why
    #: (``no heartbeat for 84s``): the host is skipped with both only if
    #: its ping fails too.
    doubt: str | None = None
    evidence: str | None = None

    def unanswered(self, ping_failure: str) -> str:
        """The skip reason when the ping failed with ``ping_failure``."""
        if self.doubt:
            return '%s (%s, %s)' % (self.doubt, self.evidence, ping_failure)
        return 'agent not responding (%s)' % ping_failure


def _sent_at(report: dict[str, Any]) -> datetime.datetime | None:
    """The agent's send time from its report, None if absent or bad."""
    value = report.get('sent_at')
    if not isinstance(value, str):
        return None
    try:
        sent = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return sent if sent.tzinfo is not None else sent.replace(
        tzinfo=datetime.UTC)


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
        # NOTE: until the service says, no row is trusted to skip a host.
        self._listening_since: datetime.datetime | None = None

    def heartbeat(self, report: dict[str, Any]) -> None:
        """Record an agent's report (the body of its heartbeat cast).

        ``sent_at`` (the agent's clock, optional: older agents do not
        send it) orders heartbeats handled out of order, so the last
        heartbeat before a goodbye cannot undo the goodbye.
        """
        record = AgentRecord.from_dict(
            {k: v for k, v in report.items()
             if k not in ('first_seen', 'last_seen', 'stopped_at')})
        stopping = bool(report.get('stopping'))
        sent_at = _sent_at(report)
        now = objects.utcnow()
        # NOTE: a heartbeat older than agent_down_time is no straggler
        # of the agent's last run: its clock was set back.
        recorded = self.store.heartbeat(
            record, now=now, stopping=stopping, sent_at=sent_at,
            max_lag=CONF.registry.agent_down_time)
        if recorded.stale:
            LOG.debug('Agent %s: heartbeat sent at %s arrived after a newer '
                      'one; ignored', record.host, sent_at)
            return
        with self._lock:
            # NOTE: written before the lock is taken, so a refresh that
            # runs meanwhile has it too; this only makes it count sooner.
            # A heartbeat handled by another thread since may be newer.
            known = self._known.get(record.host)
            if self._read_at is not None and (
                    known is None or known.last_seen is None
                    or known.last_seen <= now):
                self._known[record.host] = dataclasses.replace(
                    record, last_seen=now,
                    stopped_at=now if stopping else None)
        before = recorded.before
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

    def listening(self, since: datetime.datetime | None = None) -> None:
        """Heartbeats reach this conductor from now (or ``since``) on."""
        self._listening_since = since or objects.utcnow()

    def _trusted(self, record: AgentRecord) -> bool:
        """Whether a row's verdict can skip its host without a ping.

        Only once heartbeats have reached a conductor for long enough that
        a live agent's would have cleared it: a goodbye received while
        this conductor listened, or any row after ``agent_down_time`` of
        listening (every live agent beats within that, and whichever
        conductor receives the beat writes the row).
        """
        since = self._listening_since
        if since is None:
            return False
        if record.stopped_at is not None and record.stopped_at >= since:
            return True
        listened = (objects.utcnow() - since).total_seconds()
        return listened > CONF.registry.agent_down_time

    def status(self, host: str) -> AgentStatus:
        """Whether to call ``host``, and whether its agent needs a ping."""
        record = self._lookup(host)
        if record is None:
            return AgentStatus()
        # NOTE: jitter only shortens intervals; a second of slack for
        # the cast and the row update.
        recent = CONF.registry.heartbeat_interval + 1
        if record.stopped_at is None and self._silence(record) <= recent:
            return AgentStatus(skip_reason=too_old(record.rpc_version),
                               heard_recently=True)
        against = self._against(record)
        if against is None:
            return AgentStatus()
        if self._trusted(record):
            return AgentStatus(skip_reason=self.skip_reason(host, record))
        return AgentStatus(doubt=against[0], evidence=against[1])

    def _against(self, record: AgentRecord) -> tuple[str, str] | None:
        """What the row holds against its agent, and why; or None."""
        if record.stopped_at is not None:
            return 'agent stopped', 'at %s' % record.stopped_at.isoformat(
                timespec='seconds')
        if self._is_down(record):
            return 'agent down', 'no heartbeat for %ds' % self._silence(
                record)
        if too_old(record.rpc_version):
            return 'agent too old', 'RPC version %s, needs %s' % (
                record.rpc_version, REQUIRED_AGENT_RPC_VERSION)
        return None

    def skip_reason(self, host: str,
                    record: AgentRecord | None = None) -> str | None:
        """What the row alone says against calling ``host``, or None.

        For operators (``agents list``); a fan-out pings a host in doubt
        instead (:meth:`status`).
        """
        record = record or self._lookup(host)
        if record is None:
            return None
        against = self._against(record)
        if against is None:
            return None
        what, why = against
        if what == 'agent down':
            why += ', agent_down_time %ds' % CONF.registry.agent_down_time
        return '%s (%s)' % (what, why)

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

