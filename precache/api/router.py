"""Routes: a path template maps each method to a plain handler function.

Placement's style (``ROUTE_DECLARATIONS``) without its framework: one
table, readable at a glance, and the OpenAPI document is checked against
it. Every resource route is served at the root and again under ``/v2.1``
because openstacksdk follows the ``v2.1`` link of the version document
while novaclient posts to the endpoint it is given. ``/v2/images`` is
Glance's lookup, which novaclient sends to the same endpoint when given
an override (handlers/images.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import webob
import webob.exc

from precache.api.handlers import aggregates, images, jobs, root

Handler = Callable[..., webob.Response]

#: Version documents and the API description: no token needed.
PUBLIC = {
    '/': {'GET': root.versions},
    '/v2.1': {'GET': root.version},
    '/openapi.json': {'GET': root.openapi},
}

#: Resources, at the root and under each of PREFIXES.
ROUTES: dict[str, dict[str, Handler]] = {
    '/os-aggregates': {'GET': aggregates.list_aggregates},
    '/os-aggregates/{aggregate_id}': {'GET': aggregates.show_aggregate},
    '/os-aggregates/{aggregate_id}/images': {
        'GET': aggregates.list_images,
        'POST': aggregates.cache_images,
    },
    '/jobs': {'GET': jobs.list_jobs},
    '/jobs/{job_id}': {'GET': jobs.show_job, 'DELETE': jobs.cancel_job},
    '/v2/images': {'GET': images.list_images},
    '/v2/images/{image_id}': {'GET': images.show_image},
}

PREFIXES = ('/v2.1',)


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r'\\{(\w+)\\}', r'(?P<\1>[^/]+)', re.escape(template))
    return re.compile('^%s$' % pattern)


class Router:
    """Find the handler of a request; 404 and 405 (with Allow) otherwise."""

    def __init__(self) -> None:
        self._routes = [(_compile(t), m) for t, m in ROUTES.items()]

    @staticmethod
    def normalize(path: str) -> str:
        """Drop a trailing slash and the ``/v2.1`` prefix."""
        if len(path) > 1:
            path = path.rstrip('/') or '/'
        for prefix in PREFIXES:
            if path.startswith(prefix + '/'):
                return path[len(prefix):]
        return path

    @staticmethod
    def is_public(path: str) -> bool:
        if len(path) > 1:
            path = path.rstrip('/') or '/'
        return path in PUBLIC

    def match(self, method: str, path: str
              ) -> tuple[Handler, dict[str, Any]]:
        if len(path) > 1:
            path = path.rstrip('/') or '/'
        methods: dict[str, Handler] | None = PUBLIC.get(path)
        params: dict[str, Any] = {}
        if methods is None:
            path = self.normalize(path)
            for pattern, candidates in self._routes:
                found = pattern.match(path)
                if found:
                    methods, params = candidates, found.groupdict()
                    break
        if methods is None:
            raise webob.exc.HTTPNotFound(
                detail='No such resource: %s' % path[:200])
        handler = methods.get(method)
        if handler is None:
            allowed = ', '.join(sorted(methods))
            raise webob.exc.HTTPMethodNotAllowed(
                detail='Method %s is not allowed here; allowed: %s.'
                       % (method[:20], allowed),
                headers={'Allow': allowed})
        return handler, params
