"""Notifications the conductor sends about its jobs.

Nova's own three (``aggregate.cache_images.start/progress/end``, the same
event types and versioned payloads, so a consumer written for Nova's
pre-caching keeps working) and precache's richer ones
(``precache.job.start/end``, ``precache.image.<state>``). Every event and
field is documented in docs/notifications.md.

A job's threads only queue what happened; one sender thread per
conductor builds the payloads and talks to the message bus. So a slow or
absent bus never holds a fan-out slot, and a notification that fails is
logged and dropped: it never fails a job.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

import oslo_messaging as messaging

from precache import objects, rpc
from precache.conf import CONF

LOG = logging.getLogger(__name__)

PUBLISHER = 'precache-conductor'

CACHE_IMAGES_START = 'aggregate.cache_images.start'
CACHE_IMAGES_PROGRESS = 'aggregate.cache_images.progress'
CACHE_IMAGES_END = 'aggregate.cache_images.end'
JOB_START = 'precache.job.start'
JOB_END = 'precache.job.end'
#: ``precache.image.cached``, ``.existing``, ``.error``, ``.unsupported``,
#: ``.skipped``: one per (host, image) of a job.
IMAGE_EVENT = 'precache.image.%s'

#: A sender gives up on the bus after this many reconnection attempts
#: (oslo.messaging's default retries forever).
SEND_RETRY = 2

Events = list[tuple[str, dict[str, Any]]]


# -- payloads ---------------------------------------------------------------

def _nova_object(name: str, version: str,
                 data: dict[str, Any]) -> dict[str, Any]:
    """Nova's versioned-object envelope, as its notifications carry."""
    return {'nova_object.name': name, 'nova_object.namespace': 'nova',
            'nova_object.version': version, 'nova_object.data': data}


def _nova_id(value: str | None) -> int | None:
    """Nova's aggregate ids are integers; a static inventory's may not be."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class AggregatePayload:
    """Nova's ``AggregatePayload`` 1.1 (cache_images start and end)."""

    id: int | None
    uuid: str | None
    name: str
    hosts: list[str]
    metadata: dict[str, str]

    def to_primitive(self) -> dict[str, Any]:
        return _nova_object('AggregatePayload', '1.1',
                            dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class AggregateCachePayload:
    """Nova's ``AggregateCachePayload`` 1.0 (one per host, cache_images
    progress). ``images_cached``: ``cached`` or ``existing``;
    ``images_failed``: every other state, as Nova counts them."""

    id: int | None
    uuid: str | None
    name: str
    host: str
    images_cached: list[str]
    images_failed: list[str]
    index: int
    total: int

    def to_primitive(self) -> dict[str, Any]:
        return _nova_object('AggregateCachePayload', '1.0',
                            dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class JobStartPayload:
    """``precache.job.start``."""

    job_id: str
    aggregate: str
    image_ids: list[str]
    hosts: int
    options: dict[str, Any]
    resumed: bool

    def to_primitive(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class JobEndPayload:
    """``precache.job.end``: counts per (host, image) state."""

    job_id: str
    aggregate: str
    image_ids: list[str]
    hosts: int
    state: str
    reason: str | None
    counts: dict[str, int]
    seconds: float

    def to_primitive(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ImagePayload:
    """``precache.image.<state>``: one image on one host."""

    job_id: str
    aggregate: str
    host: str
    cell: str | None
    image_id: str
    state: str
    method: str | None
    bytes: int
    seconds: float
    reason: str | None

    def to_primitive(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _JobEvents:
    """What the sender thread knows of one job (only it touches this)."""

    job_id: str
    aggregate: AggregatePayload
    reported: set[str]

    @property
    def total(self) -> int:
        return len(self.aggregate.hosts)


def _by_host(results: Iterable[objects.HostImageResult]
             ) -> dict[str, list[objects.HostImageResult]]:
    found: dict[str, list[objects.HostImageResult]] = {}
    for result in results:
        found.setdefault(result.host, []).append(result)
    return found


def _hosts(job: objects.Job) -> list[str]:
    return list(dict.fromkeys(r.host for r in job.results or ()))


def aggregate_payload(job: objects.Job,
                      found: Any | None = None) -> AggregatePayload:
    """``found``: the inventory's aggregate (id, uuid, metadata), if any.

    The hosts are the job's, frozen when it was accepted, as in Nova.
    """
    return AggregatePayload(
        id=_nova_id(getattr(found, 'id', None)),
        uuid=getattr(found, 'uuid', None), name=job.aggregate,
        hosts=_hosts(job),
        metadata=dict(getattr(found, 'metadata', None) or {}))


def progress_payload(aggregate: AggregatePayload, host: str,
                     results: Iterable[objects.HostImageResult],
                     index: int) -> AggregateCachePayload:
    results = list(results)
    return AggregateCachePayload(
        id=aggregate.id, uuid=aggregate.uuid, name=aggregate.name,
        host=host,
        images_cached=[r.image_id for r in results if r.state.is_resident],
        images_failed=[r.image_id for r in results
                       if not r.state.is_resident],
        index=index, total=len(aggregate.hosts))


def job_start_payload(job: objects.Job, resumed: bool) -> JobStartPayload:
    return JobStartPayload(job_id=job.id, aggregate=job.aggregate,
                           image_ids=list(job.image_ids),
                           hosts=len(_hosts(job)),
                           options=dict(job.options), resumed=resumed)


def job_end_payload(job: objects.Job, seconds: float) -> JobEndPayload:
    counts = {state.value: job.counts.get(state.value, 0)
              for state in objects.FINAL_STATES}
    return JobEndPayload(job_id=job.id, aggregate=job.aggregate,
                         image_ids=list(job.image_ids),
                         hosts=job.hosts or len(_hosts(job)),
                         state=job.state.value, reason=job.reason,
                         counts=counts,
                         seconds=round(job.seconds if job.seconds is not None
                                       else seconds, 3))


def image_payload(job_id: str, aggregate: str,
                  result: objects.HostImageResult) -> ImagePayload:
    return ImagePayload(job_id=job_id, aggregate=aggregate,
                        host=result.host, cell=result.cell,
                        image_id=result.image_id, state=result.state.value,
                        method=result.method.value if result.method
                        else None,
                        bytes=result.bytes, seconds=round(result.seconds, 3),
                        reason=result.reason)


# -- sending ----------------------------------------------------------------

class _Sender:
    """One thread draining a bounded queue of event builders."""

    _STOP = object()

    def __init__(self, send: Callable[[str, dict[str, Any]], None],
                 max_queued: int) -> None:
        self._send = send
        self._queue: queue.Queue[Any] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def put(self, build: Callable[[], Events]) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name='notifications',
                        daemon=True)
                    self._thread.start()
        try:
            self._queue.put_nowait(build)
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                LOG.warning('Notifications: %d dropped so far, the '
                            'message bus is not keeping up ([notifications]'
                            ' max_queued)', self.dropped)

    def _loop(self) -> None:
        while True:
            build = self._queue.get()
            if build is self._STOP:
                return
            try:
                built = build()
            except Exception:  # noqa: BLE001 - never reaches a job
                LOG.warning('Notifications: could not build an event',
                            exc_info=True)
                continue
            for event_type, payload in built:
                try:
                    self._send(event_type, payload)
                except Exception as exc:  # noqa: BLE001 - as above
                    LOG.warning('Notifications: could not send %(event)s: '
                                '%(exc)s', {'event': event_type,
                                            'exc': exc})

    def stop(self, timeout: float) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop."""
        if self._thread is None:
            return
        try:
            self._queue.put(self._STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def _bus_sender(host: str) -> Callable[[str, dict[str, Any]], None]:
    notifier = messaging.Notifier(
        rpc.get_notification_transport(CONF),
        publisher_id='%s.%s' % (PUBLISHER, host), driver='messagingv2',
        topics=CONF.notifications.topics, retry=SEND_RETRY)

    def send(event_type: str, payload: dict[str, Any]) -> None:
        notifier.info({}, event_type, payload)
    return send


def _log_sender(host: str) -> Callable[[str, dict[str, Any]], None]:
    publisher = '%s.%s' % (PUBLISHER, host)

    def send(event_type: str, payload: dict[str, Any]) -> None:
        LOG.info('Notification %s from %s: %s', event_type, publisher,
                 json.dumps(payload, sort_keys=True))
    return send


class JobNotifier:
    """A conductor's job events. Every method returns at once and never
    raises; with notifications off each is a no-op."""

    def __init__(self, send: Callable[[str, dict[str, Any]], None] | None,
                 max_queued: int = 10000,
                 image_events: bool = True) -> None:
        self._sender = _Sender(send, max_queued) if send else None
        self.image_events = image_events
        # NOTE: read and written by the sender thread only.
        self._jobs: dict[str, _JobEvents] = {}

    @classmethod
    def from_conf(cls, host: str) -> JobNotifier:
        group = CONF.notifications
        if not group.enabled:
            return cls(None)
        try:
            send = (_log_sender if group.driver == 'log'
                    else _bus_sender)(host)
        except Exception:  # noqa: BLE001 - jobs run without them
            LOG.exception('Notifications are enabled but cannot be sent; '
                          'jobs run without them')
            return cls(None)
        return cls(send, group.max_queued, group.image_events)

    @property
    def enabled(self) -> bool:
        return self._sender is not None

    def _put(self, build: Callable[[], Events]) -> None:
        if self._sender is None:
            return
        try:
            self._sender.put(build)
        except Exception:  # noqa: BLE001 - never reaches a job
            LOG.warning('Notifications: could not queue an event',
                        exc_info=True)

    def job_started(self, job: objects.Job,
                    lookup: Callable[[], Any] | None = None,
                    resumed: bool | None = None) -> None:
        """``job`` with its rows, as it starts.

        ``lookup()`` returns the inventory's aggregate (for Nova's id,
        uuid and metadata); it runs on the sender thread. A resumed job
        (it was already running: by default, ``job`` says so) sends
        ``precache.job.start`` with ``resumed`` set, not Nova's start
        again, and no progress for the hosts it had finished.
        """
        if resumed is None:
            resumed = job.state is objects.JobState.RUNNING

        def build() -> Events:
            events = self._state(job, lookup)
            done = {r.host for r in job.results or ()} - {
                r.host for r in job.results or () if not r.state.is_final}
            events.reported.update(done)
            sent: Events = []
            if not resumed:
                sent.append((CACHE_IMAGES_START,
                             events.aggregate.to_primitive()))
            sent.append((JOB_START,
                         job_start_payload(job, resumed).to_primitive()))
            return sent
        self._put(build)

    def host_done(self, job_id: str,
                  results: list[objects.HostImageResult]) -> None:
        """A host's rows were recorded: its progress and image events."""
        results = [r for r in results if r.state.is_final]

        def build() -> Events:
            events = self._jobs.get(job_id)
            if events is None:
                return []
            sent: Events = []
            for host_results in _by_host(results).values():
                sent.extend(self._host_events(events, host_results))
            return sent
        self._put(build)

    def job_ended(self, job: objects.Job, seconds: float,
                  lookup: Callable[[], Any] | None = None) -> None:
        """``job`` in its final state, with its rows.

        Hosts that got no progress event (skipped when the job was
        cancelled or its window closed) get one now, so ``index`` always
        reaches ``total``.
        """
        def build() -> Events:
            events = self._jobs.pop(job.id, None) or self._state(
                job, lookup, keep=False)
            sent: Events = []
            for host, host_results in _by_host(job.results or ()).items():
                if host not in events.reported:
                    sent.extend(self._host_events(events, host_results))
            sent.append((CACHE_IMAGES_END, events.aggregate.to_primitive()))
            sent.append((JOB_END,
                         job_end_payload(job, seconds).to_primitive()))
            return sent
        self._put(build)

    def job_paused(self, job_id: str) -> None:
        """The conductor stops before the job ends; it resumes later."""
        def build() -> Events:
            self._jobs.pop(job_id, None)
            return []
        self._put(build)

    def stop(self, timeout: float = 10.0) -> None:
        if self._sender is not None:
            self._sender.stop(timeout)

    # -- on the sender thread --

    def _state(self, job: objects.Job, lookup: Callable[[], Any] | None,
               keep: bool = True) -> _JobEvents:
        found = None
        if lookup is not None:
            try:
                found = lookup()
            except Exception as exc:  # noqa: BLE001 - name only, then
                LOG.info('Job %(job)s: aggregate %(agg)s not found for '
                         'its notifications (%(exc)s); they carry its '
                         'name only', {'job': job.id, 'agg': job.aggregate,
                                       'exc': exc})
        events = _JobEvents(job.id, aggregate_payload(job, found), set())
        if keep:
            self._jobs[job.id] = events
        return events

    def _host_events(self, events: _JobEvents,
                     results: list[objects.HostImageResult]) -> Events:
        if not results:
            return []
        host = results[0].host
        sent: Events = []
        if host not in events.reported:
            events.reported.add(host)
            sent.append((CACHE_IMAGES_PROGRESS, progress_payload(
                events.aggregate, host, results,
                len(events.reported)).to_primitive()))
        if self.image_events:
            sent.extend((IMAGE_EVENT % r.state.value, image_payload(
                events.job_id, events.aggregate.name, r).to_primitive())
                for r in results)
        return sent
