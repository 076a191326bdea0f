"""A job's progress, written in batches off the fan-out's critical path.

What a fan-out slot does for a host is call its agent; the job store is
the conductor's business. One writer thread per conductor takes what has
queued up meanwhile — hosts starting (claims) and hosts' results: a wave
of hosts starts and answers within milliseconds — and writes it in one
transaction, then queues the results' notifications. A slot never waits
for the store, and the store sees a few writes a second instead of two
per host; on SQLite, where writers take turns, that was most of a host's
overhead at 64 hosts at once (docs/performance.md).

A claim is written within milliseconds of its call. A cancel made
through another conductor in that interval finds the host ``pending``
and skips it; the claim then comes back lost, the job's run
(conductor/jobrun.py, looked up by job id) stops starting hosts, and
the call already made is recorded as it ends: rows say what happened to
the hosts. A result not yet written when the conductor dies leaves its
host ``running``; the conductor that takes the job over, or this one
at its next start, calls it again (the agent answers ``existing``). A
job is summarised only after :meth:`Recorder.flush`.

Each job's writes carry the lease its run holds (db/leases.py); a batch
in which one job's lease moved to another conductor is refused whole,
and written again job by job: that job's writes are dropped, not
retried, and its run stops (:class:`~precache.exception.LeaseLost`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from precache import exception, objects
from precache.db.api import JobStore
from precache.db.leases import Lease
from precache.notifications import JobNotifier

LOG = logging.getLogger(__name__)

#: Seconds between attempts at a write that failed; then the job fails.
RETRY_DELAYS = (0.5, 2.0, 5.0)

Results = tuple[str, list[objects.HostImageResult]]
Claim = tuple[str, str]


class ClaimListener(Protocol):
    """The run of a job, as the recorder reports to it."""

    def claim_lost(self, host: str) -> None:
        """A cancel skipped the host's rows before its claim was written."""

    def lease_lost(self) -> None:
        """Another conductor took the job over: its writes were refused."""


class Recorder:
    """One writer thread; see the module docstring."""

    def __init__(self, store: JobStore, notifier: JobNotifier,
                 runs: Mapping[str, ClaimListener]) -> None:
        """``runs``: the jobs running in this conductor by id; the one
        whose claim a cancel lost hears of it."""
        self.store = store
        self.notifier = notifier
        self.runs = runs
        self._cond = threading.Condition()
        self._claims: list[Claim] = []
        self._results: list[Results] = []
        # NOTE: per job, claims and results queued or being written, and
        # the error that lost some of them.
        self._pending: collections.Counter[str] = collections.Counter()
        self._failed: dict[str, BaseException] = {}
        # NOTE: the lease each job's writes need, as its run queued them.
        self._leases: dict[str, Lease] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._write_loop,
                                        name='recorder', daemon=True)
        self._thread.start()

    def claim(self, job_id: str, host: str,
              lease: Lease | None = None) -> None:
        """Queue marking a host's rows ``running``; returns at once."""
        self._queue(job_id, self._claims, (job_id, host), lease)

    def put(self, job_id: str, results: list[objects.HostImageResult],
            lease: Lease | None = None) -> None:
        """Queue one host's results; returns at once."""
        self._queue(job_id, self._results, (job_id, results), lease)

    def _queue(self, job_id: str, queue: list, item: object,
               lease: Lease | None) -> None:
        with self._cond:
            if self._stopping:
                raise exception.PrecacheException(
                    'the result recorder has stopped')
            if lease is not None:
                self._leases[job_id] = lease
            queue.append(item)
            self._pending[job_id] += 1
            self._cond.notify_all()

    def sync(self, job_id: str) -> None:
        """Wait until everything queued for ``job_id`` is written."""
        with self._cond:
            while self._pending[job_id]:
                self._cond.wait()

    def flush(self, job_id: str) -> None:
        """:meth:`sync`, then forget the job.

        :raises: PrecacheException when some results could not be written.
        """
        with self._cond:
            while self._pending[job_id]:
                self._cond.wait()
            del self._pending[job_id]
            self._leases.pop(job_id, None)
            error = self._failed.pop(job_id, None)
        if isinstance(error, exception.LeaseLost):
            raise error
        if error is not None:
            raise exception.PrecacheException(
                'results of job %s could not be recorded: %s'
                % (job_id, error))

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._claims or self._results
                           or self._stopping):
                    self._cond.wait()
                if not (self._claims or self._results):
                    return
                claims, self._claims = self._claims, []
                results, self._results = self._results, []
                leases = dict(self._leases)
            lost, failed = self._write(claims, results, leases)
            for job_id, host in lost:
                self._claim_lost(job_id, host)
            for job_id, rows in results:
                if job_id not in failed:
                    self.notifier.host_done(job_id, rows)
            with self._cond:
                for job_id in [c[0] for c in claims] + [r[0] for r in results]:
                    self._pending[job_id] -= 1
                self._failed.update(failed)
                self._cond.notify_all()

    def _claim_lost(self, job_id: str, host: str) -> None:
        LOG.info('Job %(job)s: cancelled elsewhere as host %(host)s '
                 'started; its call finishes, no other host starts',
                 {'job': job_id, 'host': host})
        run = self.runs.get(job_id)
        if run is not None:
            run.claim_lost(host)

    def _write(self, claims: list[Claim], results: list[Results],
               leases: dict[str, Lease]
               ) -> tuple[list[Claim], dict[str, BaseException]]:
        """Write it all: (lost claims, jobs whose writes failed)."""
        try:
            return self.store.record_progress(claims, results, leases), {}
        except exception.LeaseLost:
            pass  # NOTE: the job whose lease moved is found below
        except Exception:  # noqa: BLE001 - retried per job below
            LOG.exception('Could not record %d claim(s) and %d host '
                          'result(s); retrying job by job', len(claims),
                          len(results))
        lost: list[Claim] = []
        failed: dict[str, BaseException] = {}
        for job_id in dict.fromkeys([c[0] for c in claims]
                                    + [r[0] for r in results]):
            of_job = ([c for c in claims if c[0] == job_id],
                      [r for r in results if r[0] == job_id])
            for delay in (*RETRY_DELAYS, None):
                try:
                    lost += self.store.record_progress(*of_job, leases)
                    break
                except exception.LeaseLost as exc:
                    failed[job_id] = exc
                    run = self.runs.get(job_id)
                    # NOTE: not a later run of the job, under a new lease.
                    if run is not None and getattr(
                            run, 'lease', None) == leases.get(job_id):
                        run.lease_lost()
                    break
                except Exception as exc:  # noqa: BLE001 - the job fails
                    if delay is None:
                        LOG.error('Job %s: %d claim(s) and %d host '
                                  'result(s) lost: %s', job_id,
                                  len(of_job[0]), len(of_job[1]), exc)
                        failed[job_id] = exc
                    else:
                        time.sleep(delay)
        return lost, failed
