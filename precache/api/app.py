"""The WSGI application of precache-api, built from configuration.

No paste: :func:`build_app` composes the middleware in code, outermost
first::

    RequestId          x-openstack-request-id on every response
    JsonErrors         every error is a Nova-style JSON fault; no traceback
    HTTPProxyToWSGI    X-Forwarded-* when [oslo_middleware] allows it
    BodySizeLimit      413 before anything reads a huge body
    public paths  ──▶  API (version documents, /openapi.json)
    auth_token         keystonemiddleware, or NoAuth (embedded mode only)
    API                microversion, route, policy, handler

The API reaches the conductor only through its RPC client, created on the
first request (after a pre-forking server such as gunicorn has forked).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import webob.exc
from keystonemiddleware import auth_token
from oslo_middleware import http_proxy_to_wsgi, request_id

from precache import context, rpc
from precache.api import faults, microversion, policy, router, util
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF

LOG = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class API:
    """Route a request to its handler; errors become faults."""

    def __init__(self, conductor: Callable[[], ConductorAPI]) -> None:
        self.router = router.Router()
        self.conductor = conductor

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        environ[util.CONDUCTOR_KEY] = self.conductor
        req = util.Request(environ)
        version = microversion.MAX_VERSION
        try:
            path = req.path_info
            public = router.Router.is_public(path)
            try:
                version = microversion.parse(environ)
            except webob.exc.HTTPException:
                if not public:
                    raise
            environ[microversion.ENVIRON_KEY] = version
            handler, params = self.router.match(req.method, path)
            resp = handler(req, **params)
        except Exception as exc:  # noqa: BLE001 - every error is a fault
            resp = faults.from_exception(
                exc, environ.get(request_id.ENV_REQUEST_ID))
        resp.headerlist.extend(microversion.headers(version))
        return resp(environ, start_response)


class Context:
    """Put the caller's RequestContext into the environment.

    After auth_token it is built from the headers auth_token set; with
    ``noauth`` every caller is an admin of project ``noauth``; on public
    paths the caller is anonymous.
    """

    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if self.mode == 'keystone':
            ctxt = context.RequestContext.from_environ(environ)
        elif self.mode == 'noauth':
            # NOTE: a token a client sends anyway (keystoneauth sends
            # "notused") must not reach Glance as the caller's.
            ctxt = context.RequestContext.from_environ(
                environ, user_id='noauth', project_id='noauth',
                roles=['admin', 'member', 'reader'], is_admin=True,
                auth_token=None)
        else:
            ctxt = context.RequestContext.from_environ(
                environ, user_id=None, project_id=None, roles=[],
                auth_token=None)
        # NOTE: from_environ made it this thread's current context: the
        # lines logged while handling the request carry its ids.
        environ[util.CONTEXT_KEY] = ctxt
        return self.app(environ, start_response)


class PublicSplit:
    """Version documents and /openapi.json bypass authentication."""

    def __init__(self, public: Any, protected: Any) -> None:
        self.public = public
        self.protected = protected

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if router.Router.is_public(environ.get('PATH_INFO') or '/'):
            return self.public(environ, start_response)
        return self.protected(environ, start_response)


class _LimitedInput:
    """A body stream that fails with 413 past ``limit`` bytes (chunked)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.left = limit + 1

    def _check(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left <= 0:
            raise webob.exc.HTTPRequestEntityTooLarge(
                detail='Request body is larger than %d bytes.'
                       % CONF.api.max_request_body_size)
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.left
        return self._check(self.stream.read(min(size, self.left)))

    def readline(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.left
        return self._check(self.stream.readline(min(size, self.left)))


class BodySizeLimit:
    """413 for bodies over [api] max_request_body_size; 400 bad length."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        limit = CONF.api.max_request_body_size
        length = environ.get('CONTENT_LENGTH')
        if length:
            if not length.isdigit():
                return faults.response(400, 'Invalid Content-Length.')(
                    environ, start_response)
            if int(length) > limit:
                return faults.response(
                    413, 'Request body is larger than %d bytes.' % limit)(
                    environ, start_response)
        elif 'wsgi.input' in environ:
            environ['wsgi.input'] = _LimitedInput(environ['wsgi.input'],
                                                  limit)
        return self.app(environ, start_response)


class LazyConductor:
    """The RPC client, made on first use (after a server forked)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: ConductorAPI | None = None

    def __call__(self) -> ConductorAPI:
        with self._lock:
            if self._api is None:
                self._api = ConductorAPI(rpc.get_transport(CONF),
                                         timeout=CONF.api.rpc_timeout,
                                         retry=3)
            return self._api


def build_app(conductor: Callable[[], ConductorAPI] | None = None) -> Any:
    """The whole WSGI application, per [api] and [keystone_authtoken]."""
    mode = CONF.api.auth_strategy
    api = API(conductor or LazyConductor())
    policy.init()
    protected: Any = Context(api, mode)
    if mode == 'keystone':
        protected = auth_token.AuthProtocol(
            protected, {'oslo_config_config': CONF})
    else:
        LOG.warning('precache-api runs WITHOUT AUTHENTICATION ([api] '
                    'auth_strategy = noauth): every caller is an admin. '
                    'Never let anything but this host reach it.')
    app: Any = PublicSplit(Context(api, 'anonymous'), protected)
    app = BodySizeLimit(app)
    app = http_proxy_to_wsgi.HTTPProxyToWSGI(app, conf=CONF)
    app = faults.JsonErrors(app)
    return request_id.RequestId(app)
