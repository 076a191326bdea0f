"""Built-in schedules and the periodic reconcile: jobs a conductor starts
by itself.

Every ``[schedules] check_interval`` seconds (and once at start-up) the
scheduler takes, for each schedule and aggregate, the latest time the cron
expression names; if that occurrence has not been claimed in the job
store, and its window (if any) is still open, it claims it and starts the
job. Claims are one transaction under a lock (precache.db.schedules), so
conductors sharing a job store start each occurrence once, and never while
the previous run of the same schedule and aggregate is still pending or
running. A run missed while every conductor was down is therefore made
once at the next start, while its window is open; older ones are not
made. A schedule seen for the first time outside its window waits for its
next occurrence rather than running at once.

The periodic reconcile (``[conductor] reconcile_interval``) works the
same way, its occurrences being multiples of the interval.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from typing import TYPE_CHECKING, Any

import croniter

from precache import context, exception
from precache.conductor import desired, windows
from precache.conf import CONF
from precache.conf import schedules as schedules_conf
from precache.confcheck import validate
from precache.db.schedules import Claim, ScheduleStore

if TYPE_CHECKING:
    from precache.conductor.jobs import JobRunner

LOG = logging.getLogger(__name__)

CRON_HELP = ('a cron expression: minute hour day-of-month month '
             'day-of-week, e.g. "0 2 * * *"')


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One ``[schedule:<name>]`` group, checked."""

    name: str
    cron: str
    aggregates: tuple[str, ...]
    images: tuple[str, ...] = ()
    image_tag: str | None = None
    image_properties: tuple[tuple[str, str], ...] = ()
    window: int | None = None
    max_concurrent_hosts: int | None = None

    def latest(self, now: datetime.datetime) -> datetime.datetime:
        """The latest scheduled time at or before ``now`` (local time)."""
        local = now.astimezone()
        moment = croniter.croniter(self.cron, local).get_prev(
            datetime.datetime)
        # NOTE: croniter's get_prev is strictly before; an occurrence at
        # exactly ``now`` is due now.
        following = croniter.croniter(self.cron, moment).get_next(
            datetime.datetime)
        return following if following <= local else moment

    @property
    def selects_images(self) -> bool:
        return self.image_tag is not None or bool(self.image_properties)


def _invalid(conf: Any, name: str, option: str,
             reason: str) -> exception.ConfigInvalid:
    group = schedules_conf.SCHEDULE_GROUP_PREFIX + name
    return exception.ConfigInvalid(reason='[%s] %s %s: %s' % (
        group, option, validate.origin(conf, group, option), reason))


def load(conf: Any = CONF) -> list[Schedule]:
    """The schedules named in ``[schedules] names``.

    :raises: ConfigInvalid, naming the group, option and file, when one is
        unusable: the conductor refuses to start rather than skip it.
    """
    found = []
    for name in conf.schedules.names or ():
        group = getattr(conf, schedules_conf.register_schedule(conf, name))
        if not group.cron:
            raise _invalid(conf, name, 'cron', 'required: %s' % CRON_HELP)
        if not croniter.croniter.is_valid(group.cron):
            raise _invalid(conf, name, 'cron', '%r is not %s'
                           % (group.cron, CRON_HELP))
        if not group.aggregates:
            raise _invalid(conf, name, 'aggregates',
                           'required: the aggregates (id, uuid or name) '
                           'to run on')
        if not (group.images or group.image_tag or group.image_properties):
            raise _invalid(conf, name, 'images',
                           'give images, image_tag or image_properties')
        window = None
        if group.window:
            try:
                window = windows.parse_duration(group.window)
            except ValueError as exc:
                raise _invalid(conf, name, 'window', str(exc)) from None
        found.append(Schedule(
            name=name, cron=group.cron, aggregates=tuple(group.aggregates),
            images=tuple(group.images or ()), image_tag=group.image_tag,
            image_properties=tuple(sorted(
                (group.image_properties or {}).items())),
            window=window, max_concurrent_hosts=group.max_concurrent_hosts))
    return found


class Scheduler:
    """Runs the schedules and the periodic reconcile in one thread."""

    def __init__(self, runner: JobRunner, store: ScheduleStore,
                 schedules: list[Schedule] | None = None,
                 clock: windows.Clock | None = None) -> None:
        self.runner = runner
        self.store = store
        self.schedules = load() if schedules is None else schedules
        self.clock = clock or runner.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Catch up on missed runs now, then look every check_interval."""
        if not self.schedules and not (
                CONF.conductor.reconcile_interval
                and CONF.conductor.reconcile_aggregates):
            return
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='schedules')
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - next tick tries again
                LOG.exception('Schedules: check failed; next in %ds',
                              CONF.schedules.check_interval)
            self._stop.wait(CONF.schedules.check_interval)

    def tick(self) -> list[str]:
        """Start what is due; returns the ids of the jobs started."""
        now = self.clock()
        started = []
        for schedule in self.schedules:
            due = schedule.latest(now)
            for aggregate in schedule.aggregates:
                job_id = self._run_schedule(schedule, aggregate, due, now)
                if job_id:
                    started.append(job_id)
        for aggregate, due in self._reconciles(now):
            job_id = self._reconcile(aggregate, due, now)
            if job_id:
                started.append(job_id)
        return started

    # -- schedules ---------------------------------------------------------

    def _run_schedule(self, schedule: Schedule, aggregate: str,
                      due: datetime.datetime,
                      now: datetime.datetime) -> str | None:
        key = '%s/%s' % (schedule.name, aggregate)
        deadline = (due + datetime.timedelta(seconds=schedule.window)
                    if schedule.window else None)
        closed = deadline is not None and now >= deadline
        first_seen = self.store.get(key) is None
        if closed and not first_seen:
            return None  # NOTE: missed and its window is over
        if not self._claim(key, due, now):
            return None
        if closed or (first_seen and deadline is None):
            self.store.finish_claim(
                key, due, note='schedule added; waits for its next run')
            return None
        try:
            images = self._images(schedule)
            if not images:
                raise exception.Invalid(reason='no image matches')
            options: dict[str, Any] = {
                'source': 'schedule:%s' % schedule.name, 'dedupe': True}
            if deadline is not None:
                options['deadline'] = deadline.isoformat()
            if schedule.max_concurrent_hosts:
                options['max_concurrent_hosts'] = \
                    schedule.max_concurrent_hosts
            origin = context.get_internal_context('schedule-%s' % key)
            job = self.runner.create(aggregate, images, options,
                                     request_id=origin.global_id)
        except exception.PrecacheException as exc:
            LOG.warning('Schedule %(key)s: run of %(due)s started no job: '
                        '%(why)s', {'key': key, 'due': due.isoformat(),
                                    'why': exc})
            self.store.finish_claim(key, due, note=str(exc))
            return None
        self.store.finish_claim(key, due, job_id=job.id)
        LOG.info('Schedule %(key)s: run of %(due)s is job %(job)s '
                 '(%(images)d image(s), deadline %(deadline)s)',
                 {'key': key, 'due': due.isoformat(), 'job': job.id,
                  'images': len(images), 'deadline': deadline})
        return job.id

    def _claim(self, key: str, due: datetime.datetime,
               now: datetime.datetime) -> bool:
        claim = self.store.claim(key, due, self.runner.conductor_host, now)
        if claim is Claim.BUSY:
            LOG.info('Schedule %(key)s: run of %(due)s waits for the '
                     'previous run to end', {'key': key,
                                             'due': due.isoformat()})
        return claim is Claim.CLAIMED

    def _images(self, schedule: Schedule) -> list[str]:
        images = list(schedule.images)
        if schedule.selects_images:
            for image in self.runner.image_service.find(
                    tag=schedule.image_tag,
                    properties=dict(schedule.image_properties) or None):
                if image['id'] not in images:
                    images.append(image['id'])
        return images

    # -- periodic reconcile ------------------------------------------------

    @staticmethod
    def _reconciles(now: datetime.datetime
                    ) -> list[tuple[str, datetime.datetime]]:
        interval = CONF.conductor.reconcile_interval
        if not interval:
            return []
        epoch = int(now.timestamp())
        due = datetime.datetime.fromtimestamp(epoch - epoch % interval,
                                              datetime.UTC)
        return [(aggregate, due)
                for aggregate in CONF.conductor.reconcile_aggregates or ()]

    def _reconcile(self, aggregate: str, due: datetime.datetime,
                   now: datetime.datetime) -> str | None:
        key = 'reconcile/%s' % aggregate
        if not self._claim(key, due, now):
            return None
        try:
            origin = context.get_internal_context(
                'reconcile-%s' % aggregate)
            job = desired.reconcile(self.runner, aggregate,
                                    request_id=origin.global_id)
        except exception.PrecacheException as exc:
            LOG.warning('Periodic reconcile of %(agg)s failed: %(why)s',
                        {'agg': aggregate, 'why': exc})
            self.store.finish_claim(key, due, note=str(exc))
            return None
        if job is None:
            self.store.finish_claim(key, due, note='nothing missing')
            return None
        self.store.finish_claim(key, due, job_id=job.id)
        return job.id
