"""One job running in this conductor: its hosts, its stop, its end.

:class:`~precache.conductor.jobs.JobRunner` accepts, cancels and resumes
jobs and owns what they all share (:class:`Shared`: the store, the slot
limiter, the recorder, the start lock). When it starts a job it makes a
:class:`JobRun` and registers it by job id under the start lock, so a
cancel finds either a job not started or its run. The run holds that
job's state — its stop event, maintenance window, images, whether it was
resumed, whether a cancel is under way — and everything reports to it:
the fan-out asks it to start each host (:meth:`JobRun.start_host`,
which answers when to try a host again: conductor/retries.py), to record
a host that failed outside its call (:meth:`JobRun.host_failed`) and one
whose retry will not start (:meth:`JobRun.retry_dropped`); the recorder
tells it that a cancel made elsewhere took a host's claim
(:meth:`JobRun.claim_lost`).

A run holds its job's lease (conductor/liveness.py): every write it
makes carries it, and the first write refused because another conductor
took the job over (:meth:`JobRun.lease_lost`) stops it at once — no
other host starts, nothing more is written for the job, one line is
logged. A run resumed from another conductor calls its ``pending``
hosts and, again, those left ``running``: the agent's per-image lock
makes a fetch still going there finish first, and the call answers
``existing``; those rows' reason says ``resumed from <conductor>``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from precache import exception, objects, states
from precache.conductor import fanout, hostcall, retries, windows
from precache.conductor.hostcall import HostCaller
from precache.conductor.inventory import Inventory
from precache.conductor.liveness import LeaseClock
from precache.conductor.recorder import Recorder
from precache.conf import CONF
from precache.db.api import JobStore
from precache.db.leases import Lease, LeaseStore
from precache.notifications import JobNotifier

LOG = logging.getLogger(__name__)

State = objects.HostImageState
JobState = objects.JobState


@dataclasses.dataclass(frozen=True)
class Shared:
    """What every job run of one conductor shares."""

    store: JobStore
    inventory: Inventory
    caller: HostCaller
    limiter: fanout.Limiter
    recorder: Recorder
    notifier: JobNotifier
    #: A cancel and the start of a host exclude each other here: a host
    #: either starts (its claim queued before the cancel writes) or is
    #: left for the cancel to skip.
    start_lock: threading.Lock
    #: Set when the conductor stops: no job starts another host.
    stopping: threading.Event
    clock: windows.Clock = objects.utcnow
    #: Whether this conductor's last lease renewal still holds, and the
    #: store to check with when it does not (None: no leases).
    lease_clock: LeaseClock | None = None
    leases: LeaseStore | None = None


#: The reason of a row a run resumed from another conductor called again.
RESUMED_FROM = 'resumed from %s'


class JobRun:
    """One running job; see the module docstring."""

    def __init__(self, shared: Shared, job_id: str, resumed: bool,
                 lease: Lease | None = None,
                 resumed_from: str | None = None) -> None:
        self.shared = shared
        self.job_id = job_id
        #: Running before this conductor took it up (a restart).
        self.resumed = resumed
        #: The lease every write carries (None: unfenced).
        self.lease = lease
        #: The conductor this run took the job over from.
        self.resumed_from = resumed_from
        #: Another conductor holds the job now: write nothing more.
        self.lost = False
        #: Hosts left running by the previous owner, called again.
        self.recalled: set[str] = set()
        #: Set by a cancel, a lost claim or the conductor stopping.
        self.stop = threading.Event()
        #: A cancel is under way: start no host (under the start lock).
        self.cancelling = False
        self.window = windows.Window(None, shared.clock)
        self.images: list[objects.ImageSpec] = []
        self.job: objects.Job | None = None
        #: Hosts started and not yet recorded: their attempts so far.
        self._attempts: dict[str, retries.HostAttempts] = {}

    # -- what the fan-out and the recorder report ---------------------------

    def start_host(self, host: str, cell: str | None
                   ) -> fanout.Retry | None:
        """Claim the host and call it; its results are queued, or it is
        tried again later (conductor/retries.py): returns when."""
        if self.lost or not self._lease_holds():
            return None  # NOTE: the job's next owner calls the host
        tried = self._attempts.get(host)
        if self.window.closed():
            if tried is not None:
                self.retry_dropped(host, cell)
                return None
            # NOTE: the slot was taken just before the deadline; the host
            # is not claimed, so end() skips it with the others left.
            self.shared.store.skip_hosts(
                self.job_id, [host], states.SkipReason.WINDOW_CLOSED.value,
                lease=self.lease)
            return None
        with self.shared.start_lock:
            go = not self.cancelling
            if go and tried is None:
                self.shared.recorder.claim(self.job_id, host, self.lease)
        if not go:
            # NOTE: the cancel skips the rows of hosts not started; one
            # between its attempts is running: it ends here.
            if tried is not None:
                self.retry_dropped(host, cell)
            return None
        assert self.job is not None
        if tried is None:
            tried = self._attempts[host] = retries.HostAttempts(
                self.job_id, host, self.images, self._attempt_limit(),
                self.window, self.stop)
        wait = tried.ended(self.shared.caller.cache_images(
            self.job, tried.images_to_try(), host, cell, self.window))
        if wait is None:
            self._record(self._attempts.pop(host).results())
            return None
        return fanout.Retry(time.monotonic() + wait)

    def host_failed(self, host: str, cell: str | None,
                    exc: BaseException) -> None:
        """Record what :meth:`start_host` raised as the host's error."""
        tried = self._attempts.pop(host, None)
        kept = tried.kept() if tried else []
        done = {r.image_id for r in kept}
        self._record(kept + hostcall.results_for(
            host, cell, [i for i in self.images if i.id not in done],
            State.ERROR, states.ErrorReason.INTERNAL.detail(exc)))

    def retry_dropped(self, host: str, cell: str | None) -> None:
        """Record a host's last attempt: it will not be tried again."""
        tried = self._attempts.pop(host, None)
        if tried is None:
            return
        tried.dropped('the job stops' if self.stop.is_set() or
                      self.cancelling else 'the window closed')
        self._record(tried.results())

    def _attempt_limit(self) -> int:
        """``[conductor] host_attempts``, or the job's lower option."""
        assert self.job is not None
        asked = self.job.options.get('host_attempts')
        configured = CONF.conductor.host_attempts
        return min(configured, asked) if asked else configured

    def claim_lost(self, host: str) -> None:
        """A cancel made elsewhere skipped ``host`` as its call started."""
        self.stop_starting()

    def lease_lost(self, why: str = 'lost to another conductor') -> None:
        """Another conductor took the job (or may take it, ``why``):
        stop, and write nothing more."""
        if self.lost:
            return
        self.lost = True
        LOG.warning('Job %(job)s: lease %(gen)s %(why)s; this one stops '
                    'working on it and writes nothing more',
                    {'job': self.job_id, 'why': why,
                     'gen': self.lease.generation if self.lease else '-'})
        self.halt()

    def _lease_holds(self) -> bool:
        """Whether the lease still covers starting a host: the last
        renewal does, else the job store says (a pause past the lease)."""
        shared, lease = self.shared, self.lease
        if lease is None or shared.lease_clock is None \
                or shared.leases is None or shared.lease_clock.valid():
            return True
        started = time.monotonic()
        try:
            lost = shared.leases.renew(lease.owner, CONF.conductor.lease_time,
                                       {self.job_id: lease})
        except exception.JobStoreError:
            # NOTE: the host stays pending; the lease, no longer renewed,
            # expires and the job is taken over.
            self.lease_lost('not confirmed (job store unreachable)')
            return False
        if lost:
            self.lease_lost()
            return False
        shared.lease_clock.renewed(started)
        return True

    # -- stopping -------------------------------------------------------------

    def halt(self) -> None:
        """Take no more hosts, and wake the fan-out waiting for a slot."""
        self.stop.set()
        self.shared.limiter.wake()

    def stop_starting(self) -> None:
        """Start no more hosts: those in flight finish, as on a cancel."""
        with self.shared.start_lock:
            self.cancelling = True
        self.halt()

    def cancel_requested(self) -> bool:
        """Whether the job's recorded reason is a cancel, from anywhere."""
        job = self.shared.store.get_job(self.job_id, with_results=False)
        return states.JobReason.of(job.reason) is states.JobReason.CANCELLED

    # -- the run --------------------------------------------------------------

    def fan_out(self) -> list[str]:
        """Work on the job's unfinished hosts; the hosts never started."""
        shared = self.shared
        if shared.stopping.is_set():
            self.stop.set()
        job = self.job = shared.store.get_job(self.job_id)
        self.window = windows.Window(windows.deadline_of(job.options),
                                     shared.clock)
        shared.notifier.job_started(
            job, lambda: shared.inventory.get_aggregate(job.aggregate),
            self.resumed)
        self.images = shared.store.get_images(job.id)
        todo: dict[str, str | None] = {}
        for result in job.results or []:
            if not result.state.is_final:
                todo.setdefault(result.host, result.cell)
                if result.state is State.RUNNING and self.resumed_from:
                    self.recalled.add(result.host)
        if self.resumed_from:
            LOG.warning('Job %(job)s: taken over from conductor %(old)s '
                        '(lease %(gen)s); %(todo)d host(s) left, %(again)d '
                        'of them called again', {
                            'job': self.job_id, 'old': self.resumed_from,
                            'gen': self.lease.generation if self.lease
                            else '-', 'todo': len(todo),
                            'again': len(self.recalled)})
        slots = fanout.JobSlots(
            max_hosts=job.options.get('max_concurrent_hosts'),
            max_hosts_per_cell=job.options.get(
                'max_concurrent_hosts_per_cell'))
        return fanout.run(list(todo.items()), self, shared.limiter, slots,
                          self.stop, self.window)

    def end(self, left: list[str], started: float) -> None:
        """After the fan-out: expire, pause or finish the job.

        ``left``: the hosts never started; ``started``: time.monotonic()
        when the run began. Nothing, once the lease is lost.
        """
        try:
            if not self.lost:
                self._end(left, started)
        except exception.LeaseLost:
            self.lease_lost()

    def _end(self, left: list[str], started: float) -> None:
        shared = self.shared
        shared.recorder.flush(self.job_id)
        if left and self.window.closed() and not self.cancel_requested():
            skipped = shared.store.skip_hosts(
                self.job_id, left, states.SkipReason.WINDOW_CLOSED.value,
                lease=self.lease)
            LOG.warning('Job %(job)s: window closed at %(deadline)s; '
                        '%(left)d host(s) not started (%(rows)d host '
                        'image(s) skipped)',
                        {'job': self.job_id, 'left': len(left),
                         'rows': skipped, 'deadline': self.window.deadline})
            left = []
        if left and not self.cancel_requested():
            LOG.warning('Job %(job)s: conductor stopping, %(left)d host(s) '
                        'not started; the job resumes at next start, or '
                        'on another conductor once its lease is released',
                        {'job': self.job_id, 'left': len(left)})
            shared.notifier.job_paused(self.job_id)
            return
        self._finish(time.monotonic() - started)

    def _finish(self, seconds: float) -> None:
        store, job_id = self.shared.store, self.job_id
        job = store.get_job(job_id)
        note = ''
        if self.cancel_requested():
            final, note = JobState.CANCELLED, states.JobReason.CANCELLED
        elif any(r.state is State.SKIPPED and states.SkipReason.of(r.reason)
                 is states.SkipReason.WINDOW_CLOSED
                 for r in job.results or []):
            final = JobState.EXPIRED
            note = states.JobReason.WINDOW_CLOSED
        else:
            final = JobState.DONE
        # NOTE: a cancel that found no host in flight already ended it.
        store.set_job_state(
            job_id, final, reason=states.JobReason.WINDOW_CLOSED.value
            if final is JobState.EXPIRED else None,
            only_from=states.job_sources(final, states.JobEvent.FINISH),
            lease=self.lease)
        job = store.get_job(job_id)
        self.shared.notifier.job_ended(job, seconds)
        LOG.info('Job %(job)s: %(summary)s in %(secs).1fs%(note)s',
                 {'job': job_id, 'summary': objects.summary_text(job.counts),
                  'secs': seconds, 'note': ' (%s)' % note if note else ''})
        failed: dict[str, int] = {}
        for result in job.results or []:
            if result.state is State.ERROR:
                failed[result.image_id] = failed.get(result.image_id, 0) + 1
        for image_id, count in sorted(failed.items()):
            LOG.warning('Job %(job)s: image %(image)s failed on %(n)d '
                        'host(s)', {'job': job_id, 'image': image_id,
                                    'n': count})

    def _record(self, results: list[objects.HostImageResult]) -> None:
        """Queue a host's results; the host's slot is free at once."""
        if self.lost:
            return
        for result in results:
            if result.host in self.recalled and not result.reason:
                result.reason = RESUMED_FROM % self.resumed_from
        self.shared.recorder.put(self.job_id, results, self.lease)
