"""keystoneauth1 sessions and adapters built from a config group.

Every OpenStack client of precache (Glance, Nova) gets its session here,
the way Nova and Ironic do it: auth plugin, session and adapter options of
one group (``[glance]``, ``[nova]``), endpoint from the catalog unless
``endpoint_override`` is set. A request made for an API caller
authenticates with that caller's token instead (:func:`get_user_adapter`),
so the service itself decides what the caller may see. Foreign errors of
keystoneauth are translated into :mod:`precache.exception` here, once,
and retries with backoff (tenacity) are shared by the clients.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import service_token, token_endpoint
from keystoneauth1 import session as ks_session
from keystoneauth1.adapter import Adapter

from precache import exception
from precache.conf import CONF

LOG = logging.getLogger(__name__)

T = TypeVar('T')

_lock = threading.Lock()
_sessions: dict[str, ks_session.Session] = {}


class Retryable(Exception):
    """Raised inside a retried call for a failure worth trying again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _auth_url(group: str) -> str | None:
    return getattr(CONF[group], 'auth_url', None)


def describe(group: str) -> str:
    """``[glance] (Keystone at http://…)`` for one-line errors."""
    where = _auth_url(group) or (
        'endpoint %s' % CONF[group].endpoint_override
        if getattr(CONF[group], 'endpoint_override', None) else 'no endpoint')
    if _auth_url(group):
        where = 'Keystone at %s' % where
    return '[%s] (%s)' % (group, where)


def get_auth(group: str) -> Any:
    """The auth plugin of ``group``, or None (``auth_type`` unset)."""
    try:
        return ks_loading.load_auth_from_conf_options(CONF, group)
    except ks_exc.MissingRequiredOptions as exc:
        raise exception.ConfigInvalid(
            reason='%s: missing option(s) %s' % (
                describe(group), ', '.join(o.dest for o in exc.options))
        ) from exc
    except ks_exc.NoMatchingPlugin as exc:
        raise exception.ConfigInvalid(reason='%s: %s' % (describe(group), exc)
                                ) from exc


def get_session(group: str) -> ks_session.Session:
    """One session per group and process (it pools connections)."""
    with _lock:
        session = _sessions.get(group)
        if session is None:
            session = ks_loading.load_session_from_conf_options(
                CONF, group, auth=get_auth(group))
            _sessions[group] = session
        return session


def reset() -> None:
    """Forget cached sessions (tests, config reload)."""
    with _lock:
        _sessions.clear()


def get_adapter(group: str, **kwargs: Any) -> Adapter:
    """An Adapter with service type, interface, region, override of group.

    Without an auth plugin there is no catalog, so ``endpoint_override``
    is required.
    """
    session = get_session(group)
    if session.auth is None and not CONF[group].endpoint_override:
        raise exception.ConfigInvalid(
            reason='%s: set auth_type (and its options) or '
                   'endpoint_override' % describe(group))
    return ks_loading.load_adapter_from_conf_options(
        CONF, group, session=session, **kwargs)


def get_user_adapter(group: str, auth_token: str) -> Adapter:
    """An Adapter of ``group`` that authenticates as an API caller.

    The caller's token goes to the endpoint the service credentials find
    (catalog or ``endpoint_override``); the group's pooled session is
    reused. With ``[service_user] send_service_user_token`` a service
    token travels with it (X-Service-Token), as Nova sends one, so a
    caller's token that expires mid-request is still accepted.
    """
    service = get_adapter(group)
    try:
        endpoint = service.get_endpoint()
    except ks_exc.ClientException as exc:
        raise translate(group, exc) from exc
    if not endpoint:
        raise exception.ServiceUnavailable(
            service=describe(group), reason='no endpoint for the caller\'s '
            'token (catalog or endpoint_override)')
    auth: Any = token_endpoint.Token(endpoint, auth_token)
    if CONF.service_user.send_service_user_token:
        service_auth = get_session('service_user').auth
        if service_auth is not None:
            auth = service_token.ServiceTokenAuthWrapper(
                user_auth=auth, service_auth=service_auth)
    return ks_loading.load_adapter_from_conf_options(
        CONF, group, session=service.session, auth=auth)


def check(group: str) -> str:
    """Authenticate and find the endpoint now; return it.

    Start-up calls this so that unreachable Keystone or wrong
    credentials end the service with one line naming the group.
    """
    adapter = get_adapter(group)
    try:
        if adapter.session.auth is not None:
            adapter.get_token()  # even with endpoint_override
        endpoint = adapter.get_endpoint()
    except ks_exc.ClientException as exc:
        raise translate(group, exc) from exc
    if not endpoint:
        raise exception.ServiceUnavailable(
            service=describe(group),
            reason='no %s endpoint in the catalog (interfaces %s, region '
                   '%s)' % (CONF[group].service_type,
                            ', '.join(CONF[group].valid_interfaces or []),
                            CONF[group].region_name))
    return str(endpoint)


def translate(group: str, exc: Exception) -> exception.PrecacheException:
    """A keystoneauth error as ours, naming the group and where it went."""
    if isinstance(exc, ks_exc.Unauthorized | ks_exc.AuthorizationFailure):
        return exception.ServiceUnavailable(
            service=describe(group),
            reason='authentication failed (wrong credentials?): %s' % exc)
    if isinstance(exc, ks_exc.ConnectionError):
        return exception.ServiceUnavailable(
            service=describe(group), reason=str(exc))
    if isinstance(exc, ks_exc.EndpointNotFound | ks_exc.CatalogException):
        return exception.ServiceUnavailable(
            service=describe(group), reason='no endpoint: %s' % exc)
    return exception.ServiceUnavailable(service=describe(group),
                                        reason=str(exc))


def retrying(group: str, what: str, call: Callable[[], T]) -> T:
    """Run ``call``; retry :class:`Retryable` and connection errors.

    ``[group] num_retries`` retries, exponential backoff from
    ``retry_delay``. After the last, one ServiceUnavailable naming the
    service and the last reason.
    """
    attempts = CONF[group].num_retries + 1

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        LOG.warning('%(what)s failed (attempt %(n)d of %(of)d): %(err)s; '
                    'retrying', {'what': what, 'n': state.attempt_number,
                                 'of': attempts, 'err': exc})

    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(
            multiplier=CONF[group].retry_delay, max=30),
        retry=tenacity.retry_if_exception_type(
            (Retryable, ks_exc.ConnectionError)),
        before_sleep=log_retry, reraise=True)
    try:
        return retryer(call)
    except Retryable as exc:
        raise exception.ServiceUnavailable(
            service=describe(group),
            reason='%s failed after %d attempt(s): %s' % (
                what, attempts, exc.reason)) from exc
    except ks_exc.ClientException as exc:
        raise translate(group, exc) from exc
