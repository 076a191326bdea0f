"""The message bus: transports, RPC clients and servers, the serializer.

Production uses RabbitMQ (``rabbit://``); the all-in-one mode runs the same
code over kombu's in-process ``memory`` transport. Every RPC client and
server made here speaks through one :class:`Serializer`: contexts cross
as :class:`precache.context.RequestContext`, results as the dataclasses of
precache.objects, and the bytes on the bus are the plain dicts they have
always been (so older agents and conductors still understand them).
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import threading
import types
import typing
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import oslo_messaging as messaging
from oslo_config import cfg

from precache import context, objects

P = ParamSpec('P')
R = TypeVar('R')

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


# -- the message boundary ---------------------------------------------------

#: What crosses the bus as its ``to_dict()`` and comes back by the
#: receiver's type hints (:func:`typed`).
ENTITIES: tuple[type, ...] = (objects.ImageSpec, objects.HostImageResult,
                              objects.Job)


class Serializer(messaging.Serializer):
    """Contexts and precache.objects on and off the bus, tag-free.

    Out: a RequestContext becomes its :meth:`~RequestContext.to_wire`
    dict, an entity its ``to_dict()`` (inside lists and dicts too): the
    same bytes as before the serializer existed. In: a context becomes a
    RequestContext, made the current one of the thread that handles the
    call, so its ids are in every line logged meanwhile. Entities arrive
    as dicts; the receiving method's type hints turn them back into
    objects (:func:`typed`), since the bus carries no type tags.
    """

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return to_primitive(entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        if ctxt is None:
            return {}
        if isinstance(ctxt, context.RequestContext):
            return ctxt.to_wire()
        if isinstance(ctxt, dict):
            return dict(ctxt)  # NOTE: as callers sent before; as it is
        # NOTE: another oslo.context context: its ids, never its token.
        return context.RequestContext.from_dict(
            ctxt.to_dict(), overwrite=False).to_wire()

    def deserialize_context(self, ctxt: dict[str, Any]
                            ) -> context.RequestContext:
        return context.RequestContext.from_dict(ctxt or {}, overwrite=True)


def to_primitive(entity: Any) -> Any:
    """``entity`` with every precache.objects record as its dict."""
    if isinstance(entity, ENTITIES):
        return entity.to_dict()  # type: ignore[attr-defined]
    if isinstance(entity, (list, tuple)):
        return [to_primitive(item) for item in entity]
    if isinstance(entity, dict):
        return {key: to_primitive(value) for key, value in entity.items()}
    return entity


def _mentions_entity(hint: Any) -> bool:
    if hint in ENTITIES:
        return True
    return any(_mentions_entity(arg) for arg in typing.get_args(hint))


def from_primitive(hint: Any, value: Any) -> Any:
    """``value`` as type ``hint`` says: the dicts of entities in it as
    objects (lists of them, dicts of them, or None); anything else as
    it is."""
    if value is None or not _mentions_entity(hint):
        return value
    if hint in ENTITIES:
        return value if isinstance(value, hint) else \
            hint.from_dict(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if _mentions_entity(arg):
                return from_primitive(arg, value)
    if origin in (list, tuple, collections.abc.Sequence):
        return [from_primitive(args[0], item) for item in value]
    if origin in (dict, collections.abc.Mapping):
        return {key: from_primitive(args[1], item)
                for key, item in value.items()}
    return value


def typed(function: Callable[P, R]) -> Callable[P, R]:
    """Arguments and result of ``function`` as its type hints say.

    On an RPC endpoint it turns the arguments that arrived as dicts into
    objects; on a client method, the reply. Values already of their type
    pass as they are, so it may wrap both sides.
    """
    signature = inspect.signature(function)
    hints: dict[str, Any] = {}

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not hints:
            hints.update(typing.get_type_hints(function))
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in hints:
                bound.arguments[name] = from_primitive(hints[name], value)
        result = function(*bound.args, **bound.kwargs)
        typed_result: R = from_primitive(hints.get('return'), result)
        return typed_result
    return wrapper


def get_client(transport: messaging.Transport, topic: str,
               version: str) -> messaging.RPCClient:
    target = messaging.Target(topic=topic, version=version)
    return messaging.get_rpc_client(transport, target,
                                    serializer=Serializer())


def get_server(transport: messaging.Transport, topic: str, server: str,
               endpoints: list[Any]) -> messaging.MessageHandlingServer:
    """An RPC server on the default (threading) executor."""
    target = messaging.Target(topic=topic, server=server)
    return messaging.get_rpc_server(
        transport, target, endpoints, serializer=Serializer(),
        access_policy=messaging.DefaultRPCAccessPolicy)


def request_context(**values: Any) -> context.RequestContext:
    """A context for a caller with no request behind it (a command, a
    test), not made the thread's current one; see precache.context."""
    return context.RequestContext(overwrite=False, **values)


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
