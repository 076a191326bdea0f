"""A consumer service: one notification listener and a conductor client."""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import rpc
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.consumer.endpoint import NotificationEndpoint

LOG = logging.getLogger(__name__)


def targets() -> list[messaging.Target]:
    """Every ``[consumer] topics`` × ``exchanges`` pair."""
    return [messaging.Target(topic=topic, exchange=exchange)
            for exchange in CONF.consumer.exchanges
            for topic in CONF.consumer.topics]


class ConsumerService:
    def __init__(self, rpc_transport: messaging.Transport,
                 notification_transport: messaging.Transport) -> None:
        self.conductor = ConductorAPI(rpc_transport,
                                      timeout=CONF.consumer.conductor_timeout)
        self.endpoint = NotificationEndpoint(self.conductor)
        # NOTE: requeue only when no conductor answered (see endpoint).
        self.listener = rpc.get_notification_listener(
            notification_transport, targets(), [self.endpoint],
            pool=CONF.consumer.pool, allow_requeue=True)

    def start(self) -> None:
        self.listener.start()
        LOG.info('Consumer %(host)s started: pool %(pool)s, topic(s) '
                 '%(topics)s on exchange(s) %(exchanges)s',
                 {'host': CONF.host, 'pool': CONF.consumer.pool,
                  'topics': ', '.join(CONF.consumer.topics),
                  'exchanges': ', '.join(CONF.consumer.exchanges)})

    def stop(self) -> None:
        self.listener.stop()

    def wait(self) -> None:
        self.listener.wait()
