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
A host to be tried again (``work.start_host`` returns a :class:`Retry`,
conductor/retries.py) gives its slot back at once and waits, slotless,
until its time comes; it then goes first in its cell's queue. A stop or
the window's end drops such retries (``work.retry_dropped``).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from concurrent import futures
from typing import Protocol

from precache.conductor.windows import Window
from precache.conf import CONF

LOG = logging.getLogger(__name__)

NO_CELL = ''

#: Seconds between looks at the retries while hosts are in flight (one
#: of them may come back for a retry due sooner than any known).
RECHECK = 0.5


@dataclasses.dataclass(frozen=True)
class Retry:
    """What :meth:`HostWork.start_host` returns for a host to be tried
    again: not before ``not_before`` (time.monotonic())."""

    not_before: float


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
                window: Window | None = None,
                until: float | None = None) -> str | None:
        """Block until one of ``cells`` has a slot; take it, return it.

        ``cells`` is in preference order. Returns None once ``stop`` is set,
        the ``window`` has closed or ``until`` (time.monotonic()) passed.
        """
        with self._cond:
            while not stop.is_set():
                left = window.seconds_left() if window else None
                if left is not None and left <= 0:
                    return None
                if until is not None:
                    until_left = until - time.monotonic()
                    if until_left <= 0:
                        return None
                    left = until_left if left is None else min(
                        left, until_left)
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

    def start_host(self, host: str, cell: str | None) -> Retry | None:
        """Do the host's part of the job; returns when it is recorded, or
        when to try it again."""

    def host_failed(self, host: str, cell: str | None,
                    exc: BaseException) -> None:
        """Record what :meth:`start_host` raised for the host."""

    def retry_dropped(self, host: str, cell: str | None) -> None:
        """The host's retry will not start (a stop, the window's end):
        record what its attempts left."""


class _Retries:
    """One run's hosts waiting, slotless, for their retry, and the hosts
    it has in flight (either may still bring a retry)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: list[tuple[float, int, str, str]] = []
        self.in_flight = 0
        self.closed = False
        self._order = itertools.count()

    def add(self, retry: Retry, host: str, cell: str) -> bool:
        """Wait for ``retry``; False once the run has ended."""
        with self.cond:
            if self.closed:
                return False
            heapq.heappush(self.waiting, (retry.not_before,
                                          next(self._order), host, cell))
            return True

    def due(self) -> list[tuple[str, str]]:
        """Take the hosts whose time has come."""
        now, found = time.monotonic(), []
        with self.cond:
            while self.waiting and self.waiting[0][0] <= now:
                _, _, host, cell = heapq.heappop(self.waiting)
                found.append((host, cell))
        return found

    def next_look(self) -> float | None:
        """When something may change: the next retry due, or soon while
        hosts are in flight; None when neither."""
        with self.cond:
            first = self.waiting[0][0] if self.waiting else None
            if self.in_flight:
                soon = time.monotonic() + RECHECK
                return soon if first is None else min(first, soon)
            return first

    def close(self) -> list[tuple[str, str]]:
        """No more retries: the hosts that waited for one."""
        with self.cond:
            self.closed = True
            found = [(host, cell) for _, _, host, cell in self.waiting]
            self.waiting = []
            return found


def run(hosts: list[tuple[str, str | None]], work: HostWork,
        limiter: Limiter, job: JobSlots, stop: threading.Event,
        window: Window | None = None) -> list[str]:
    """Call ``work.start_host(host, cell)`` for every host within the
    limits, again for a host it returns a :class:`Retry` for when that
    comes, and ``work.host_failed(host, cell, exc)`` with whatever it
    raised. Returns the hosts never started because ``stop`` was set or
    ``window`` closed; the retries that were to follow are
    ``work.retry_dropped``.
    """
    queues: dict[str, collections.deque] = collections.OrderedDict()
    for host, cell in hosts:
        queues.setdefault(cell or NO_CELL, collections.deque()).append(host)
    workers = max(1, min(len(hosts), _cap(
        CONF.conductor.max_concurrent_hosts, job.max_hosts)))
    retries = _Retries()
    # NOTE: hosts started once: a retry of one is never "not started".
    started: set[str] = set()

    def one(host: str, cell: str) -> None:
        retry = None
        try:
            retry = work.start_host(host, cell or None)
        except BaseException as exc:  # noqa: BLE001 - recorded, not lost
            LOG.exception('Host %s failed outside its call', host)
            work.host_failed(host, cell or None, exc)
        finally:
            limiter.release(job, cell)
            try:
                if retry is not None and not retries.add(retry, host, cell):
                    work.retry_dropped(host, cell or None)
            finally:
                with retries.cond:
                    retries.in_flight -= 1
                    retries.cond.notify_all()

    def ended() -> bool:
        return stop.is_set() or bool(window and window.closed())

    with futures.ThreadPoolExecutor(workers,
                                    thread_name_prefix='fanout') as pool:
        order = list(queues)
        while True:
            for host, cell in retries.due():
                queues.setdefault(cell, collections.deque()).appendleft(
                    host)
                if cell not in order:
                    order.append(cell)
            waiting = [c for c in order if queues[c]]
            look = retries.next_look()
            if not waiting:
                if look is None or ended():
                    break
                with retries.cond:
                    retries.cond.wait(max(0.0, min(
                        RECHECK, look - time.monotonic())))
                continue
            cell = limiter.acquire(job, waiting, stop, window, until=look)
            if cell is None:
                if ended():
                    break
                continue
            host = queues[cell].popleft()
            started.add(host)
            # NOTE: rotate so the next pick starts after this cell.
            order.remove(cell)
            order.append(cell)
            with retries.cond:
                retries.in_flight += 1
            pool.submit(one, host, cell)
        dropped = retries.close()
    for host, cell in dropped + [(h, c) for c, queue in queues.items()
                                 for h in queue if h in started]:
        work.retry_dropped(host, cell or None)
    return [host for queue in queues.values() for host in queue
            if host not in started]
