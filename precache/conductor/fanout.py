"""Bounded fan-out of per-host work, fair across cells.

Every job a conductor runs shares one :class:`Limiter`: at most
``[conductor] max_concurrent_hosts`` hosts at once in all, at most
``max_concurrent_hosts_per_cell`` per cell, and a job may ask for less.
Hosts are taken round-robin across cells, so one big cell cannot starve
the others. :func:`run` never raises for a host: it asks its ``work`` (one
job's run, conductor/jobrun.py) to start each host, and reports anything
that raises back to it as that host's failure.
A job's maintenance window (windows.Window) ends the taking of hosts at
its deadline, even while the job waits for a slot.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from concurrent import futures
from typing import Protocol

from precache.conductor.windows import Window
from precache.conf import CONF

LOG = logging.getLogger(__name__)

NO_CELL = ''


@dataclasses.dataclass
class JobSlots:
    """One job's own limits and the hosts it has in flight."""

    max_hosts: int | None = None
    max_hosts_per_cell: int | None = None
    in_flight: int = 0
    per_cell: collections.Counter = dataclasses.field(
        default_factory=collections.Counter)


def _cap(configured: int, requested: int | None) -> int:
    """A job may lower a limit, never raise it (0 means no limit)."""
    if requested is None:
        return configured
    return min(configured, requested) if configured else requested


class Limiter:
    """Global and per-cell host slots, shared by all jobs of a process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._per_cell: collections.Counter = collections.Counter()

    def _fits(self, job: JobSlots, cell: str) -> bool:
        total = _cap(CONF.conductor.max_concurrent_hosts, job.max_hosts)
        per_cell = _cap(CONF.conductor.max_concurrent_hosts_per_cell,
                        job.max_hosts_per_cell)
        return (self._in_flight < CONF.conductor.max_concurrent_hosts
                and job.in_flight < total
                and (not CONF.conductor.max_concurrent_hosts_per_cell
                     or self._per_cell[cell]
                     < CONF.conductor.max_concurrent_hosts_per_cell)
                and (not per_cell or job.per_cell[cell] < per_cell))

    def acquire(self, job: JobSlots, cells: list[str],
                stop: threading.Event,
                window: Window | None = None) -> str | None:
        """Block until one of ``cells`` has a slot; take it, return it.

        ``cells`` is in preference order. Returns None once ``stop`` is set
        or the ``window`` has closed.
        """
        with self._cond:
            while not stop.is_set():
                left = window.seconds_left() if window else None
                if left is not None and left <= 0:
                    return None
                for cell in cells:
                    if self._fits(job, cell):
                        self._in_flight += 1
                        self._per_cell[cell] += 1
                        job.in_flight += 1
                        job.per_cell[cell] += 1
                        return cell
                self._cond.wait(0.5 if left is None else
                                min(0.5, max(0.01, left)))
            return None

    def release(self, job: JobSlots, cell: str) -> None:
        with self._cond:
            self._in_flight -= 1
            self._per_cell[cell] -= 1
            job.in_flight -= 1
            job.per_cell[cell] -= 1
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight


class HostWork(Protocol):
    """What :func:`run` reports to: the run of one job."""

    def start_host(self, host: str, cell: str | None) -> None:
        """Do the host's part of the job; returns when it is recorded."""

    def host_failed(self, host: str, cell: str | None,
                    exc: BaseException) -> None:
        """Record what :meth:`start_host` raised for the host."""


def run(hosts: list[tuple[str, str | None]], work: HostWork,
        limiter: Limiter, job: JobSlots, stop: threading.Event,
        window: Window | None = None) -> list[str]:
    """Call ``work.start_host(host, cell)`` for every host within the
    limits, and ``work.host_failed(host, cell, exc)`` with whatever it
    raised. Returns the hosts never started because ``stop`` was set or
    ``window`` closed.
    """
    queues: dict[str, collections.deque] = collections.OrderedDict()
    for host, cell in hosts:
        queues.setdefault(cell or NO_CELL, collections.deque()).append(host)
    workers = max(1, min(len(hosts), _cap(
        CONF.conductor.max_concurrent_hosts, job.max_hosts)))

    def one(host: str, cell: str) -> None:
        try:
            work.start_host(host, cell or None)
        except BaseException as exc:  # noqa: BLE001 - recorded, not lost
            LOG.exception('Host %s failed outside its call', host)
            work.host_failed(host, cell or None, exc)
        finally:
            limiter.release(job, cell)

    with futures.ThreadPoolExecutor(workers,
                                    thread_name_prefix='fanout') as pool:
        order = list(queues)
        while any(queues.values()):
            waiting = [c for c in order if queues[c]]
            cell = limiter.acquire(job, waiting, stop, window)
            if cell is None:
                break
            host = queues[cell].popleft()
            # NOTE: rotate so the next pick starts after this cell.
            order.remove(cell)
            order.append(cell)
            pool.submit(one, host, cell)
    return [host for queue in queues.values() for host in queue]
