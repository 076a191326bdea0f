"""The message bus: transports, RPC clients and servers.

Production uses RabbitMQ (``rabbit://``); the all-in-one mode runs the same
code over kombu's in-process ``memory`` transport. Nothing else in precache
talks to oslo.messaging directly.
"""

from __future__ import annotations

import threading
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg

#: Exceptions of these modules are re-raised, typed, by the caller.
ALLOWED_EXMODS = ['precache.exception']

CONDUCTOR_TOPIC = 'precache-conductor'
AGENT_TOPIC = 'precache-agent'

# NOTE: oslo.messaging sets a zero polling interval on kombu's memory
# transport, so every idle listener spins a core. 5 ms keeps the embedded
# mode responsive and cuts its idle CPU by an order of magnitude.
MEMORY_POLLING_INTERVAL = 0.005

_lock = threading.Lock()
_transports: dict[str, messaging.Transport] = {}


def _slow_down_memory_polling() -> None:
    from kombu.transport import memory

    def _get(self: Any) -> float:
        return MEMORY_POLLING_INTERVAL

    def _set(self: Any, value: float) -> None:
        """Ignore oslo.messaging's zero."""

    memory.Transport.polling_interval = property(  # type: ignore[assignment]
        _get, _set)


def get_transport(conf: cfg.ConfigOpts,
                  url: str | None = None) -> messaging.Transport:
    """The (cached) RPC transport for ``url`` or ``[DEFAULT]transport_url``.

    Cells get their own URL; one transport per URL per process.
    """
    url = url or conf.transport_url
    key = url or ''
    with _lock:
        transport = _transports.get(key)
        if transport is None:
            if key.startswith('kombu+memory'):
                _slow_down_memory_polling()
            transport = messaging.get_rpc_transport(
                conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS)
            _transports[key] = transport
        return transport


def notification_url(conf: cfg.ConfigOpts) -> str | None:
    """``[oslo_messaging_notifications] transport_url``, else the RPC one."""
    try:
        url = conf.oslo_messaging_notifications.transport_url
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        url = None  # NOTE: oslo.messaging registers the group lazily
    return url or conf.transport_url


def get_notification_transport(conf: cfg.ConfigOpts,
                               url: str | None = None
                               ) -> messaging.Transport:
    """The (cached) transport notifications go over and come in on.

    As in OpenStack it may be another bus than RPC's: ``url``, else
    :func:`notification_url`.
    """
    url = url or notification_url(conf)
    key = 'notify:%s' % (url or '')
    with _lock:
        transport = _transports.get(key)
        if transport is None:
            if (url or '').startswith('kombu+memory'):
                _slow_down_memory_polling()
            transport = messaging.get_notification_transport(conf, url=url)
            _transports[key] = transport
        return transport


def get_notification_listener(
        transport: messaging.Transport, targets: list[messaging.Target],
        endpoints: list[Any], pool: str | None = None,
        allow_requeue: bool = False) -> messaging.MessageHandlingServer:
    """A notification listener on the default (threading) executor."""
    return messaging.get_notification_listener(
        transport, targets, endpoints, allow_requeue=allow_requeue,
        pool=pool)


def cleanup() -> None:
    with _lock:
        for transport in _transports.values():
            transport.cleanup()
        _transports.clear()


def get_client(transport: messaging.Transport, topic: str,
               version: str) -> messaging.RPCClient:
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(transport, target)


def get_server(transport: messaging.Transport, topic: str, server: str,
               endpoints: list[Any]) -> messaging.MessageHandlingServer:
    """An RPC server on the default (threading) executor."""
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(
        transport, target, endpoints,
        access_policy=messaging.DefaultRPCAccessPolicy)


def request_context(**values: Any) -> dict[str, Any]:
    """The context sent with every call: ids for the logs on both sides."""
    return {key: value for key, value in values.items() if value is not None}


def check_reachable(conf: cfg.ConfigOpts, url: str | None = None,
                    timeout: float = 5.0) -> None:
    """Fail fast, with one clear line, when the broker cannot be reached.

    oslo.messaging would otherwise retry forever in the background.
    """
    import kombu

    from precache import exception

    parsed = messaging.TransportURL.parse(conf, url or conf.transport_url)
    if parsed.transport in ('fake', 'kombu+memory'):
        return
    errors = []
    for host in parsed.hosts or [None]:
        where = '%s:%s' % (getattr(host, 'hostname', None) or 'localhost',
                           getattr(host, 'port', None) or 5672)
        connection = kombu.Connection(
            hostname=getattr(host, 'hostname', None) or 'localhost',
            port=getattr(host, 'port', None) or 5672,
            userid=getattr(host, 'username', None) or 'guest',
            password=getattr(host, 'password', None) or 'guest',
            virtual_host=parsed.virtual_host or '/',
            connect_timeout=timeout)
        try:
            connection.connect()
            return
        except Exception as exc:  # noqa: BLE001 - translated below
            errors.append('%s: %s' % (where, exc))
        finally:
            connection.release()
    raise exception.ServiceUnavailable(service='message bus',
                                       reason='; '.join(errors))
