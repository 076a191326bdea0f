"""Notifications in the functional tests: publish as Glance and Nova do,
listen as a consumer of the conductor's events does, run the consumer.

Every name on the bus carries the test's tag (topic, pool), so tests of
one session never see each other's notifications.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any

import kombu
import oslo_messaging as messaging
import pytest

from precache import rpc
from precache.conf import CONF
from tests.functional.harness import Cluster, Service

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'samples')
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'docs', 'notifications.md')


def sample(name: str) -> dict[str, Any]:
    """A notification as the service hands it to oslo.messaging, with a
    message id of its own, as each one a service sends has."""
    with open(os.path.join(SAMPLES, name + '.json')) as stream:
        message = dict(json.load(stream))
    if 'message_id' in message:
        message['message_id'] = str(uuid.uuid4())
    return message


def _amqp_url(transport_url: str) -> str:
    parsed = urllib.parse.urlsplit(transport_url)
    return urllib.parse.urlunsplit(('amqp', *parsed[1:]))


def publish_raw(transport_url: str, exchange: str, routing_key: str,
                body: str | bytes) -> None:
    """Bytes onto an exchange, declared as oslo.messaging declares it."""
    with kombu.Connection(_amqp_url(transport_url)) as connection:
        target = kombu.Exchange(exchange, type='topic', durable=False,
                                auto_delete=False)
        connection.Producer().publish(
            body, exchange=target, routing_key=routing_key,
            content_type='application/json', content_encoding='utf-8',
            declare=[target], retry=True)


def publish(transport_url: str, exchange: str, topic: str,
            message: dict[str, Any]) -> str:
    """``message`` in oslo.messaging's 2.0 envelope, as Glance's and
    Nova's Notifier send it; returns its message id. A message without
    message_id and timestamp (Nova's samples) gets them, kept in
    ``message``: publishing it again is a redelivery of the same one."""
    message.setdefault('message_id', str(uuid.uuid4()))
    message.setdefault('timestamp', time.strftime('%Y-%m-%d %H:%M:%S.000000',
                                                  time.gmtime()))
    publish_raw(transport_url, exchange,
                '%s.%s' % (topic, message['priority'].lower()),
                json.dumps({'oslo.version': '2.0',
                            'oslo.message': json.dumps(message)}))
    return str(message['message_id'])


class Listener:
    """A notification listener in the test process: what it received."""

    def __init__(self, transport_url: str, exchange: str,
                 topic: str) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        transport = rpc.get_notification_transport(CONF, transport_url)
        self.server = rpc.get_notification_listener(
            transport, [messaging.Target(topic=topic, exchange=exchange)],
            [self])

    def info(self, ctxt: dict[str, Any], publisher_id: str,
             event_type: str, payload: dict[str, Any],
             metadata: dict[str, Any]) -> None:
        with self._lock:
            self.received.append((publisher_id, event_type, payload))

    def __enter__(self) -> Listener:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.stop()
        self.server.wait()

    def wait_for(self, event_type: str, timeout: float = 30.0
                 ) -> list[tuple[str, str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = list(self.received)
            if any(e == event_type for _, e, _ in got):
                return got
            if time.monotonic() > deadline:
                pytest.fail('no %s within %.0fs; received %s' % (
                    event_type, timeout, [e for _, e, _ in got]))
            time.sleep(0.05)


def consumer(cluster: Cluster, topic: str, **options: Any) -> Service:
    """Configure (not start) a precache-consumer for this test."""
    host = cluster.host('consumer')
    service = Service(
        'consumer', 'precache-consumer', os.path.join(cluster.root,
                                                      'consumer'),
        {'DEFAULT': {'host': host, 'transport_url': cluster.transport_url},
         'consumer': {'topics': topic, 'pool': 'pool-%s' % cluster.tag,
                      'requeue_delay': 1, **options}},
        ready=r'Consumer %s started' % re.escape(host))
    cluster.services.append(service)
    return service


def documented_fields() -> dict[str, set[str]]:
    """Event type → the payload fields docs/notifications.md lists."""
    with open(DOCS) as stream:
        text = stream.read()
    found: dict[str, set[str]] = {}
    for section in text.split('\n### ')[1:]:
        heading, _, body = section.partition('\n')
        body = body.split('\n## ')[0]
        fields = set(re.findall(r'^\| `([a-z_]+)` \|', body, re.M))
        for event_type in re.findall(r'`([a-z_.]+)`', heading):
            found[event_type] = fields
    return found
