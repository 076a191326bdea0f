"""Job lifecycle: accept, run on the hosts, record, summarise.

A job is recorded with one pending row per (host, image) before any host is
contacted, and every row ends final: a host that cannot be reached, times
out or fails in any way gets ``skipped``/``error`` with a reason. Nova
loses exactly these cases.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

from oslo_utils import uuidutils

from precache import context, exception, notifications, objects, states
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import ImageService
from precache.conductor import fanout, windows
from precache.conductor.hostcall import HostCaller
from precache.conductor.inventory import Inventory
from precache.conductor.jobrun import JobRun, Shared
from precache.conductor.liveness import LeaseClock
from precache.conductor.recorder import Recorder
from precache.conductor.registry import AgentStatus
from precache.conf import CONF
from precache.db.api import JobStore
from precache.db.leases import Candidate, Lease, LeaseStore

LOG = logging.getLogger(__name__)

State = objects.HostImageState

def _limit(name: str, value: Any) -> int:
    """A concurrency or attempt limit: it may only lower the configured
    one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise exception.InvalidOption(option=name,
                                      reason='must be an integer >= 1')
    return value


def _host_names(name: str, value: Any) -> list[str]:
    """Hosts of the aggregate to limit the job to (checked in create)."""
    if not isinstance(value, list) or not value or not all(
            isinstance(h, str) and h for h in value):
        raise exception.InvalidOption(
            option=name, reason='must be a non-empty list of host names')
    if len(set(value)) != len(value):
        raise exception.InvalidOption(option=name,
                                      reason='a host is listed twice')
    return list(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise exception.InvalidOption(option=name,
                                      reason='must be true or false')
    return value


def _source(name: str, value: Any) -> str:
    """Who asked (api, cli, schedule:<name>, consumer, reconcile)."""
    if not isinstance(value, str) or not value or len(value) > 64 \
            or not value.isprintable():
        raise exception.InvalidOption(
            option=name, reason='must be printable text of 1-64 characters')
    return value


#: Job options a request may carry: name → check(name, value) that returns
#: the value to record or raises InvalidOption.
OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    'max_concurrent_hosts': _limit,
    'max_concurrent_hosts_per_cell': _limit,
    # NOTE: attempts at a host that fails for a transient reason.
    'host_attempts': _limit,
    # NOTE: an absolute deadline, or a window (seconds) turned into one
    # at accept time; see windows.py.
    **windows.OPTION_CHECKS,
    'hosts': _host_names,
    # NOTE: a pending/running job of the aggregate that already covers
    # these images on these hosts is returned instead of a new one.
    'dedupe': _flag,
    'source': _source,
}

def validate_options(options: dict[str, Any] | None,
                     now: datetime.datetime | None = None) -> dict[str, Any]:
    """The options to record; ``now`` (accept time) anchors a window."""
    checked = {}
    for name, value in (options or {}).items():
        check = OPTIONS.get(name)
        if check is None:
            raise exception.InvalidOption(option=name, reason='unknown')
        checked[name] = check(name, value)
    return windows.fix_deadline(checked, now)


class JobRunner:
    """Accepts, cancels and resumes this conductor's jobs; runs each in a
    thread of one pool as a :class:`~precache.conductor.jobrun.JobRun`,
    all sharing one Limiter.

    It holds the lease of every job it accepted, resumed or took over
    (conductor/liveness.py renews them) and runs each under its lease.
    """

    def __init__(self, store: JobStore, inventory: Inventory,
                 image_service: ImageService,
                 agents: Callable[[str | None], AgentAPI],
                 conductor_host: str,
                 agent_status: Callable[[str, str | None], AgentStatus]
                 | None = None,
                 clock: windows.Clock = objects.utcnow) -> None:
        """``agent_status(host, cell)`` is what the agent registry knows:
        whether to skip a host (agent down, too old, no cell) and whether
        it needs a ping. ``clock`` decides maintenance windows."""
        self.clock = clock
        self.store = store
        self.inventory = inventory
        self.image_service = image_service
        self.caller = HostCaller(agents, agent_status)
        self.conductor_host = conductor_host
        self.limiter = fanout.Limiter()
        self.leases = LeaseStore(store.engine)
        self.lease_clock = LeaseClock()
        # NOTE: the leases of the jobs queued or running here, by id.
        self._leases: dict[str, Lease] = {}
        #: Whether the last stop() saw every call in flight end.
        self.drained = True
        self._stop = threading.Event()
        self._pool = futures.ThreadPoolExecutor(
            CONF.conductor.max_concurrent_jobs, thread_name_prefix='job')
        # NOTE: the jobs running here by id, registered under the start
        # lock; a cancel arriving here or stop() halts them, the recorder
        # tells them of lost claims. dict operations are atomic.
        self._runs: dict[str, JobRun] = {}
        self.notifier = notifications.JobNotifier.from_conf(conductor_host)
        self.recorder = Recorder(store, self.notifier, self._runs)
        # NOTE: a cancel and the start of a host exclude each other here:
        # a host either starts (its claim queued before the cancel writes)
        # or is left for the cancel to skip.
        self._start_lock = threading.Lock()

    # -- accept -----------------------------------------------------------

    def create(self, aggregate_ref: str, image_ids: list[str],
               options: dict[str, Any] | None = None,
               request_id: str | None = None,
               caller: dict[str, Any] | None = None) -> objects.Job:
        """Validate, record and start a job; bad requests raise 400/404.

        ``caller`` (project_id, is_admin, auth_token) is the API's
        caller: the image service shows it only the images it may see
        (Glance with its token). Internal callers (CLI, cron) pass none
        and see every image.
        """
        options = validate_options(options, self.clock())
        images = self.image_service.validate(image_ids, caller=caller)
        aggregate = self.inventory.get_aggregate(str(aggregate_ref))
        names = list(aggregate.hosts)
        if 'hosts' in options:
            outside = sorted(set(options['hosts']) - set(names))
            if outside:
                raise exception.InvalidOption(
                    option='hosts', reason='not in aggregate %s: %s'
                    % (aggregate.name, ', '.join(outside)))
            names = [h for h in names if h in set(options['hosts'])]
        hosts = [(host, self.inventory.cell_of(host)) for host in names]
        job_id = uuidutils.generate_uuid()
        job = self.store.create_job(
            job_id, aggregate.name, images, hosts, options,
            conductor=self.conductor_host, request_id=request_id,
            dedupe=bool(options.get('dedupe')),
            lease_time=CONF.conductor.lease_time)
        if job.id != job_id:
            LOG.info('Job %(job)s (%(state)s) already covers '
                     '%(images)d image(s) on %(hosts)d host(s) of aggregate '
                     '%(agg)s; no new job', {
                         'job': job.id,
                         'state': job.state.value, 'images': len(images),
                         'hosts': len(hosts), 'agg': aggregate.name})
            return job
        LOG.info('Job %(job)s accepted: %(images)d image(s) '
                 'on %(hosts)d host(s) of aggregate %(agg)s',
                 {'job': job.id, 'images': len(images),
                  'hosts': len(hosts), 'agg': aggregate.name})
        self.submit(job.id, Lease(self.conductor_host, 0))
        return job

    def cancel(self, job_id: str) -> objects.Job:
        """Start no new host of a job; hosts in flight finish.

        :raises: JobNotFound; Conflict when the job is already final.
        """
        reason = states.JobReason.CANCELLED.value
        with self._start_lock:
            run = self._runs.get(job_id)
            if run is None:
                # NOTE: not running here, and run() cannot start it
                # meanwhile: it turns a job running under this lock.
                job = self.store.cancel_job(job_id, reason)
            else:
                run.cancelling = True
        if run is not None:
            run.halt()
            # NOTE: the claims of the hosts it started are written
            # before the cancel skips every host that has not started.
            self.recorder.sync(job_id)
            job = self.store.cancel_job(job_id, reason)
        LOG.info('Job %(job)s: cancel requested; %(running)d host image(s) '
                 'in flight finish, %(skipped)d skipped; now %(state)s',
                 {'job': job_id, 'running': job.counts.get('running', 0),
                  'skipped': job.counts.get('skipped', 0),
                  'state': job.state.value})
        return job

    def resident_images(self, aggregate_ref: str) -> dict[str, Any]:
        """Which images each host of an aggregate holds, as last reported.

        :raises: AggregateNotFound
        """
        aggregate = self.inventory.get_aggregate(str(aggregate_ref))
        by_host: dict[str, list[dict[str, Any]]] = {
            host: [] for host in aggregate.hosts}
        for job_id, result in self.store.resident_images(
                list(aggregate.hosts)):
            by_host[result.host].append({
                'id': result.image_id, 'state': result.state.value,
                'method': result.method.value if result.method else None,
                'bytes': result.bytes, 'job_id': job_id,
                'reported_at': result.finished_at.isoformat()
                if result.finished_at else None})
        return {'aggregate': {'id': aggregate.id, 'uuid': aggregate.uuid,
                              'name': aggregate.name},
                'hosts': [{'host': host, 'cell': self.inventory.cell_of(host),
                           'images': by_host[host]}
                          for host in aggregate.hosts]}

    def submit(self, job_id: str, lease: Lease | None = None,
               resumed_from: str | None = None) -> None:
        """Run the job in the pool, under ``lease`` if given."""
        if lease is not None:
            self._leases[job_id] = lease
        self._pool.submit(self._run_guarded, job_id, lease, resumed_from)

    def recover(self) -> list[str]:
        """Resume the jobs this conductor left unfinished, each with the
        next generation of its lease (idempotent)."""
        leases = self.leases.claim_own(self.conductor_host,
                                       CONF.conductor.lease_time)
        for job_id, lease in leases.items():
            LOG.warning('Job %s was interrupted; resuming its unfinished '
                        'hosts', job_id)
            self.submit(job_id, lease)
        return list(leases)

    # -- leases (conductor/liveness.py) -----------------------------------

    def held_leases(self) -> dict[str, Lease]:
        return dict(self._leases)

    def lease_lost(self, job_id: str,
                   why: str = 'lost to another conductor') -> None:
        run = self._runs.get(job_id)
        if run is not None:
            run.lease_lost(why)
        elif self._leases.pop(job_id, None) is not None:
            LOG.warning('Job %s: lease lost to another conductor before '
                        'it started here', job_id)

    def take_over(self, candidate: Candidate, lease: Lease) -> None:
        LOG.warning('Job %(job)s: taking it over (%(why)s), lease '
                    '%(gen)d', {'job': candidate.job_id,
                                'why': candidate.why,
                                'gen': lease.generation})
        self.submit(candidate.job_id, lease, candidate.owner)

    def stop(self) -> None:
        """Start no new host; let calls in flight finish, for at most
        ``graceful_shutdown_timeout``; then release every lease."""
        self._stop.set()
        for run in list(self._runs.values()):
            run.stop.set()
        self.limiter.wake()
        drained = threading.Thread(target=self._pool.shutdown,
                                   kwargs={'wait': True}, name='drain')
        drained.start()
        drained.join(CONF.conductor.graceful_shutdown_timeout)
        if drained.is_alive() and not self.limiter.in_flight:
            drained.join(1.0)  # NOTE: nothing in flight: runs are ending
        self.drained = not drained.is_alive()
        if not self.drained:
            LOG.warning('Conductor %(host)s: %(n)d host(s) still in flight '
                        'after graceful_shutdown_timeout (%(t)ds); the '
                        'conductor taking their jobs over calls them again',
                        {'host': self.conductor_host,
                         'n': self.limiter.in_flight,
                         't': CONF.conductor.graceful_shutdown_timeout})
            for job_id in list(self._runs):
                self.lease_lost(job_id, 'released with calls in flight')
        self.recorder.stop()
        self.notifier.stop()

    # -- run --------------------------------------------------------------

    def _run_guarded(self, job_id: str, lease: Lease | None = None,
                     resumed_from: str | None = None) -> None:
        try:
            self.run(job_id, lease, resumed_from)
        except exception.LeaseLost:
            run = self._runs.get(job_id)
            if run is not None:
                run.lease_lost()
            else:
                LOG.warning('Job %s: lease lost to another conductor; this '
                            'one writes nothing more for it', job_id)
        except Exception as exc:  # noqa: BLE001 - the job records it
            LOG.exception('Job %s failed', job_id)
            self._fail_job(job_id, exc, lease)
        finally:
            if lease is not None and self._leases.get(job_id) == lease:
                del self._leases[job_id]

    def _shared(self) -> Shared:
        """What a job run uses of this runner, as it is now."""
        return Shared(store=self.store, inventory=self.inventory,
                      caller=self.caller, limiter=self.limiter,
                      recorder=self.recorder, notifier=self.notifier,
                      start_lock=self._start_lock, stopping=self._stop,
                      clock=self.clock, lease_clock=self.lease_clock,
                      leases=self.leases)

    def _fail_job(self, job_id: str, exc: BaseException,
                  lease: Lease | None = None) -> None:
        """Unfinished rows → ``error``, the job → ``failed`` (unless it
        ended meanwhile), with the error as their reason."""
        job = self.store.get_job(job_id)
        try:
            for host in {r.host for r in job.results or []
                         if not r.state.is_final}:
                self.store.set_host_state(
                    job_id, host, State.ERROR,
                    reason=states.ErrorReason.JOB_FAILED.detail(exc),
                    lease=lease)
            failed = objects.JobState.FAILED
            self.store.set_job_state(
                job_id, failed, states.JobReason.FAILED.detail(exc),
                only_from=states.job_sources(failed, states.JobEvent.FAIL),
                lease=lease)
        except exception.LeaseLost:
            LOG.warning('Job %s: lease lost to another conductor; its '
                        'failure here is not recorded', job_id)
            return
        self.notifier.job_ended(self.store.get_job(job_id), 0.0)

    def run(self, job_id: str, lease: Lease | None = None,
            resumed_from: str | None = None) -> None:
        """Run the job here, under ``lease``; ``resumed_from``: the
        conductor it was taken over from."""
        start = time.monotonic()
        running = objects.JobState.RUNNING
        if self._stop.is_set() and lease is not None:
            return  # NOTE: stopping: its lease is released to the others
        with self._start_lock:
            # NOTE: running and registered at once: a cancel finds either
            # a job not started or its run (cancel()).
            resumed = self.store.get_job(job_id, with_results=False).state \
                is running
            if not self.store.set_job_state(
                    job_id, running, only_from=states.job_sources(
                        running, states.JobEvent.START), lease=lease):
                return  # cancelled while it waited
            run = self._runs.get(job_id)
            if run is None or run.lost:
                # NOTE: a run that lost the job may still be ending its
                # calls here when this conductor takes the job again.
                run = self._runs[job_id] = JobRun(
                    self._shared(), job_id, resumed, lease, resumed_from)
        try:
            # NOTE: this thread logs under the job's ids from now on.
            context.for_job(job_id, self.store.get_job(
                job_id, with_results=False).request_id)
            left = run.fan_out()
        finally:
            with self._start_lock:
                if self._runs.get(job_id) is run:
                    del self._runs[job_id]
        run.end(left, start)
