"""Several conductors: who is alive, which jobs each holds, who takes
over the jobs of one that died.

One thread per conductor (:class:`Liveness`) does three things on its
own period each:

* every ``report_interval``, it writes the conductor's service row
  (``up``, ``draining``, ``stopped``); a row silent for
  ``service_down_time`` is down (Nova's semantics);
* every third of ``lease_time``, it renews the lease of every job this
  conductor holds (queued or running here), in one statement, and tells
  the runner of any job whose lease moved elsewhere (the run stops at
  once);
* every ``takeover_interval``, it looks for unfinished jobs whose lease
  expired or whose owner is down or stopped, and claims each with one
  compare-and-swap (the next generation): the runner resumes it.

:class:`LeaseClock` is what the job runs ask before they start a host:
whether the last renewal still covers now. A conductor paused past its
lease (SIGSTOP, a VM freeze) finds out there before calling another
agent, and checks with the job store first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from precache import version
from precache.conf import CONF
from precache.db.leases import Candidate, Lease, LeaseStore

LOG = logging.getLogger(__name__)


class LeaseHolder(Protocol):
    """The job runner, as the lease thread sees it."""

    def held_leases(self) -> dict[str, Lease]:
        """The leases of the jobs running or queued here."""

    def lease_lost(self, job_id: str) -> None:
        """Another conductor took the job: stop working on it."""

    def take_over(self, candidate: Candidate, lease: Lease) -> None:
        """This conductor won ``candidate``: resume it."""


class LeaseClock:
    """Until when (monotonic) this conductor's last renewal holds."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic
                 ) -> None:
        self._monotonic = monotonic
        self._valid_until = monotonic() + CONF.conductor.lease_time
        self._lock = threading.Lock()

    def renewed(self, at: float) -> None:
        """A renewal that started at ``at`` (monotonic) succeeded."""
        with self._lock:
            self._valid_until = max(self._valid_until,
                                    at + CONF.conductor.lease_time)

    def valid(self) -> bool:
        return self._monotonic() < self._valid_until

    def left(self) -> float:
        return self._valid_until - self._monotonic()


class Liveness:
    """The service row, lease renewal and takeover thread."""

    def __init__(self, store: LeaseStore, host: str, runner: LeaseHolder,
                 clock: LeaseClock) -> None:
        self.store = store
        self.host = host
        self.runner = runner
        self.clock = clock
        self.state = 'up'
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------

    def report(self, started: bool = False) -> None:
        self.store.report(self.host, self.state, version.version_string,
                          started=started)

    def start(self) -> None:
        """Start the thread (the row was written at start)."""
        self._thread = threading.Thread(target=self._loop, name='liveness',
                                        daemon=True)
        self._thread.start()

    def drain(self) -> None:
        """Take over nothing more; renewals go on while jobs drain."""
        self.state = 'draining'
        self._report_quietly()

    def stop(self) -> None:
        """End the thread, release every lease (another conductor takes
        the jobs at its next look), and say ``stopped``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            released = self.store.release(self.host)
        except Exception as exc:  # noqa: BLE001 - they expire instead
            LOG.warning('Conductor %(host)s could not release its jobs; '
                        'others take them over once their leases expire: '
                        '%(error)s', {'host': self.host, 'error': exc})
        else:
            if released:
                LOG.info('Conductor %(host)s released %(n)d unfinished '
                         'job(s) to the other conductors',
                         {'host': self.host, 'n': released})
        self.state = 'stopped'
        self._report_quietly()

    def _report_quietly(self) -> None:
        try:
            self.report()
        except Exception as exc:  # noqa: BLE001 - the row ages instead
            LOG.warning('Could not write the service row of conductor '
                        '%s: %s', self.host, exc)

    # -- the thread -----------------------------------------------------------

    def _loop(self) -> None:
        conf = CONF.conductor
        now = time.monotonic()
        due = {'report': now + conf.report_interval,
               'renew': now + conf.lease_time / 3,
               # NOTE: jittered, so conductors started together do not
               # all look at once.
               'takeover': now + conf.takeover_interval * random.uniform(
                   0.5, 1.0)}
        while not self._stop.wait(max(0.0, min(due.values())
                                      - time.monotonic())):
            now = time.monotonic()
            if now >= due['report']:
                due['report'] = now + conf.report_interval
                self._report_quietly()
            if now >= due['renew']:
                due['renew'] = now + conf.lease_time / 3
                self.renew()
            if now >= due['takeover']:
                due['takeover'] = now + conf.takeover_interval
                if self.state == 'up':
                    self.take_over()

    def renew(self) -> None:
        """Renew every lease held; stop the runs whose lease moved, or
        all of them once the last renewal that reached the store has
        run out."""
        started = time.monotonic()
        held = self.runner.held_leases()
        try:
            lost = self.store.renew(self.host, CONF.conductor.lease_time,
                                    held)
        except Exception as exc:  # noqa: BLE001 - retried next period
            left = self.clock.left()
            LOG.warning('Conductor %(host)s could not renew its leases '
                        '(%(left).0fs left): %(error)s',
                        {'host': self.host, 'left': left, 'error': exc})
            if left <= 0:
                for job_id in held:
                    self.runner.lease_lost(job_id)
            return
        self.clock.renewed(started)
        for job_id in lost:
            self.runner.lease_lost(job_id)

    def take_over(self) -> list[str]:
        """Claim the jobs left by conductors gone; the ids won."""
        won = []
        try:
            live = self.store.live_conductors(
                CONF.conductor.service_down_time)
            if self.host not in live:
                live.append(self.host)
            held = self.runner.held_leases()
            for candidate in self.store.candidates(live):
                # NOTE: a job held here whose renewal came late; the next
                # renewal finds whether it is still this conductor's. Its
                # own jobs not held (a run that stopped when its lease
                # could not be confirmed) it takes again like any other.
                if candidate.job_id in held:
                    continue
                lease = self.store.take_over(
                    candidate, self.host, CONF.conductor.lease_time, live)
                if lease is None:
                    continue  # another conductor won it
                won.append(candidate.job_id)
                self.runner.take_over(candidate, lease)
        except Exception as exc:  # noqa: BLE001 - tried again next period
            LOG.warning('Conductor %s could not look for jobs to take '
                        'over: %s', self.host, exc)
        return won
