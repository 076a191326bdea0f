"""What handlers share: the request, its caller, JSON in and out."""

from __future__ import annotations

import json
import uuid
from typing import Any

import webob
import webob.exc
from oslo_utils import uuidutils

from precache.api import microversion, policy
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.context import RequestContext

CONTEXT_KEY = 'precache.context'
#: Deepest nesting of arrays and objects a body may have; Nova's bodies
#: need 3. Deeper ones are refused before any validator recurses.
MAX_BODY_DEPTH = 32
CONDUCTOR_KEY = 'precache.conductor'


class Request(webob.Request):
    """A webob request that knows its caller and its conductor."""

    @property
    def context(self) -> RequestContext:
        return self.environ[CONTEXT_KEY]

    @property
    def conductor(self) -> ConductorAPI:
        return self.environ[CONDUCTOR_KEY]()

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(self.context.to_policy_values())

    def authorize(self, rule: str) -> None:
        policy.authorize(self.credentials, rule)

    def rpc_context(self) -> RequestContext:
        """The caller's context, for the conductor: on the bus it is its
        ids and the user's and project's (RequestContext.to_wire), never
        the token."""
        return self.context

    @property
    def prefix(self) -> str:
        """``/v2.1`` when the request came in under it, else empty."""
        path = self.path_info
        return '/v2.1' if path == '/v2.1' or path.startswith('/v2.1/') \
            else ''

    @property
    def base_url(self) -> str:
        """Where clients reach us: [api] public_endpoint or the request."""
        configured = CONF.api.public_endpoint
        return (configured or self.application_url).rstrip('/')

    def url(self, path: str) -> str:
        return self.base_url + self.prefix + path

    @property
    def api_version(self) -> microversion.Version:
        return self.environ.get(microversion.ENVIRON_KEY,
                                microversion.MAX_VERSION)


def json_body(req: Request) -> Any:
    """The parsed JSON body; 400 when absent or malformed, 415 not JSON."""
    content_type = req.content_type
    if content_type and content_type != 'application/json' and \
            not content_type.endswith('+json'):
        raise webob.exc.HTTPUnsupportedMediaType(
            detail='Content type %s is not supported; send '
                   'application/json.' % content_type[:60])
    raw = req.body
    if not raw.strip():
        raise webob.exc.HTTPBadRequest(detail='The request body is empty; '
                                              'a JSON object is expected.')
    try:
        body = json.loads(raw.decode('utf-8'))
        too_deep = _depth(body) > MAX_BODY_DEPTH
    except (UnicodeDecodeError, ValueError) as exc:
        raise webob.exc.HTTPBadRequest(
            detail='Malformed request body: %s' % exc) from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise webob.exc.HTTPBadRequest(
            detail='The request body nests arrays or objects more than %d '
                   'deep.' % MAX_BODY_DEPTH)
    return body


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_BODY_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> webob.Response:
    resp = webob.Response(status=status, charset='UTF-8',
                          content_type='application/json')
    resp.text = json.dumps(body, sort_keys=True)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def canonical_uuid(value: str, what: str) -> str:
    """Lower-case dashed form of a UUID; 400 naming ``what`` otherwise."""
    if not uuidutils.is_uuid_like(value):
        raise webob.exc.HTTPBadRequest(
            detail='%s %r is not a UUID.' % (what, value[:80]))
    return str(uuid.UUID(value))
