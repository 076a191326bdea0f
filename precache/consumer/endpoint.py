"""The consumer's notification endpoint: notifications → conductor calls.

Every notification is acknowledged once handled, refused or found
malformed, so nothing a service sends can stop the consumer. Only when
no conductor answers is a notification handed back to the queue (after
``[consumer] requeue_delay``): the job it calls for is still wanted.
Conductor calls are idempotent (``dedupe``; reconcile only starts what is
missing), so a notification delivered twice, or handled by two consumers
of a pool, starts its job once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import oslo_messaging as messaging
from oslo_utils import uuidutils

from precache import context, exception, objects
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.consumer import events

LOG = logging.getLogger(__name__)

#: Message ids remembered, so a redelivered copy is acknowledged at once.
REMEMBERED = 4096

#: Errors after which the same notification may succeed later.
RETRYABLE = (exception.TemporaryFailure, messaging.MessagingTimeout,
             messaging.MessageDeliveryFailure)


class NotificationEndpoint:
    """``info`` priority of every topic and exchange listened to."""

    def __init__(self, conductor: ConductorAPI,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.conductor = conductor
        self.sleep = sleep
        self._handled: collections.OrderedDict[str, None] = \
            collections.OrderedDict()
        self._handled_lock = threading.Lock()
        self._handlers: dict[str, Callable[[str, str, Any], None]] = {}
        for event_type in events.IMAGE_EVENTS:
            self._handlers[event_type] = self._image
        for event_type in events.ADD_HOST_EVENTS:
            self._handlers[event_type] = self._add_host
        for event_type in events.METADATA_EVENTS:
            self._handlers[event_type] = self._metadata

    def info(self, ctxt: dict[str, Any], publisher_id: str,
             event_type: str, payload: Any,
             metadata: dict[str, Any]) -> Any:
        handler = self._handlers.get(event_type)
        if handler is None:
            return messaging.NotificationResult.HANDLED
        message_id = str((metadata or {}).get('message_id') or
                         uuidutils.generate_uuid())
        if self._seen(message_id):
            LOG.info('Notification %(msg)s (%(event)s from %(pub)s) was '
                     'handled already; ignored',
                     {'msg': message_id, 'event': event_type,
                      'pub': publisher_id})
            return messaging.NotificationResult.HANDLED
        # NOTE: expected failures are logged after their except block,
        # where oslo.log does not append the exception a second time.
        malformed = retry = None
        try:
            handler(message_id, event_type, payload)
        except exception.MalformedNotification as exc:
            malformed = exc
        except RETRYABLE as exc:
            retry = _one_line(exc)
        except Exception:  # noqa: BLE001 - never stop the consumer
            LOG.exception('Notification %(msg)s (%(event)s from %(pub)s) '
                          'could not be handled; dropped',
                          {'msg': message_id, 'event': event_type,
                           'pub': publisher_id})
        if malformed is not None:
            LOG.warning('Notification %(msg)s from %(pub)s ignored: '
                        '%(exc)s', {'msg': message_id, 'pub': publisher_id,
                                    'exc': malformed})
        if retry is not None:
            LOG.warning('Notification %(msg)s (%(event)s): %(exc)s; handed '
                        'back to the queue in %(delay)ds',
                        {'msg': message_id, 'event': event_type,
                         'exc': retry,
                         'delay': CONF.consumer.requeue_delay})
            self.sleep(CONF.consumer.requeue_delay)
            return messaging.NotificationResult.REQUEUE
        self._remember(message_id)
        return messaging.NotificationResult.HANDLED

    # -- handlers --

    def _image(self, message_id: str, event_type: str, payload: Any) -> None:
        event = events.parse_image(event_type, payload,
                                   CONF.desired_state.image_property,
                                   CONF.desired_state.image_tag_prefix)
        if not event.aggregates:
            return
        if event.status != 'active':
            LOG.info('Notification %(msg)s (%(event)s): image %(image)s is '
                     '%(status)s, not active; no job yet',
                     {'msg': message_id, 'event': event_type,
                      'image': event.image_id, 'status': event.status})
            return
        # NOTE: a retryable error leaves the aggregates after it for the
        # retry, which dedupe makes safe for the ones before it.
        for aggregate in event.aggregates:
            self._call(message_id, event_type, aggregate, lambda ctxt, agg:
                       self.conductor.cache_images(
                           ctxt, agg, [event.image_id],
                           {'dedupe': True, 'source': _source(event_type)}),
                       'image %s' % event.image_id)

    def _add_host(self, message_id: str, event_type: str,
                  payload: Any) -> None:
        event = events.parse_aggregate(event_type, payload)
        self._reconcile(message_id, event_type, event)

    def _metadata(self, message_id: str, event_type: str,
                  payload: Any) -> None:
        self._reconcile(message_id, event_type,
                        events.parse_aggregate(event_type, payload))

    def _reconcile(self, message_id: str, event_type: str,
                   event: events.AggregateEvent) -> None:
        """Nova's versioned add_host does not name the host: reconcile
        then looks at every host, and its job covers only those lacking
        something — in practice the one just added."""
        hosts = list(event.hosts) if event.hosts else None
        self._call(message_id, event_type, event.aggregate,
                   lambda ctxt, agg: self.conductor.reconcile(
                       ctxt, agg, hosts=hosts,
                       source=_source(event_type)),
                   'host(s) %s' % ', '.join(hosts) if hosts
                   else 'every host')

    def _call(self, message_id: str, event_type: str, aggregate: str,
              call: Callable[[context.RequestContext, str],
                             objects.Job | None],
              what: str) -> None:
        # NOTE: one request per (notification, aggregate); made current,
        # so these lines carry the id the conductor and agents log too.
        ctxt = context.get_internal_context()
        where = {'msg': message_id, 'event': event_type, 'agg': aggregate,
                 'what': what}
        refused = None
        try:
            job = call(ctxt, aggregate)
        except (exception.Invalid, exception.NotFound) as exc:
            refused = _one_line(exc)
        if refused is not None:
            LOG.warning('Notification %(msg)s (%(event)s): aggregate '
                        '%(agg)s, %(what)s: refused: %(exc)s',
                        dict(where, exc=refused))
            return
        if job is None:
            LOG.info('Notification %(msg)s (%(event)s): aggregate %(agg)s, '
                     '%(what)s: nothing missing, no job',
                     where)
            return
        LOG.info('Notification %(msg)s (%(event)s): aggregate %(agg)s, '
                 '%(what)s: job %(job)s (%(state)s, %(hosts)d host(s), '
                 '%(images)d image(s))',
                 dict(where, job=job.id, state=job.state.value,
                      hosts=job.hosts, images=len(job.image_ids)))

    # -- redelivered copies --

    def _seen(self, message_id: str) -> bool:
        with self._handled_lock:
            return message_id in self._handled

    def _remember(self, message_id: str) -> None:
        with self._handled_lock:
            self._handled[message_id] = None
            while len(self._handled) > REMEMBERED:
                self._handled.popitem(last=False)


def _source(event_type: str) -> str:
    """Recorded with the job: which notification asked for it."""
    return 'consumer:%s' % event_type


def _one_line(exc: BaseException) -> str:
    """An error's own text, without the remote traceback RPC appends."""
    text = getattr(exc, 'message', None) or str(exc)
    return text.split('\n')[0]
