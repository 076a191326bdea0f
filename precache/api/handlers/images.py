"""``/v2/images``: Glance v2's image lookup, read-only.

``nova --os-endpoint-override URL`` sends its image lookup to the
compute endpoint it is given (``URL/v2/images?id=in:…``, ``?names=in:…``,
``URL/v2/images/{id}``; under ``/v2.1`` when the override ends in it), so
precache-api answers those from the conductor's image service as the
caller sees it (Glance with the caller's token). Only lookups: no other
filter, no pagination, sorting or writes.
"""

from __future__ import annotations

from typing import Any

import webob
import webob.exc

from precache.api import policy, util

#: Most ids one lookup may name (each is one image-service request).
MAX_IDS = 100

#: Longest filter value (a URL carries about 100 ids in 4000 characters).
MAX_VALUE = 4000

#: Filters Glance takes for image properties that novaclient sends:
#: ``find_images`` asks ``names=in:…``, which Glance reads as a property
#: no image has (so its lookup by name finds nothing there either).
PROPERTY_FILTERS = frozenset({'names'})


def _values(name: str, value: str) -> list[str]:
    """Glance's ``in:a,b`` or a single value."""
    values = value[3:].split(',') if value.startswith('in:') else [value]
    if not value.isprintable() or len(values) > MAX_IDS or \
            len(value) > MAX_VALUE:
        raise webob.exc.HTTPBadRequest(
            detail='Filter %s: give at most %d printable values in %d '
                   'characters.' % (name, MAX_IDS, MAX_VALUE))
    return values


def _filters(req: util.Request
             ) -> tuple[list[str] | None, list[str] | None, dict[str, str]]:
    ids = names = None
    properties: dict[str, str] = {}
    for key, value in req.GET.items():
        if key == 'id':
            ids = _values(key, value)
        elif key == 'name':
            names = _values(key, value)
        elif key in PROPERTY_FILTERS:
            _values(key, value)
            properties[key] = value
        else:
            raise webob.exc.HTTPBadRequest(
                detail='Filter %r is not supported: precache-api answers '
                       'image lookups by id or name only; ask Glance for '
                       'more.' % key[:40])
    return ids, names, properties


def _caller(req: util.Request) -> dict[str, Any]:
    # NOTE: the token rides in the RPC payload only, as for the POST.
    return {'project_id': req.context.project_id,
            'is_admin': policy.check(req.credentials, 'context_is_admin'),
            'auth_token': req.context.auth_token}


def list_images(req: util.Request) -> webob.Response:
    """Glance's ``GET /v2/images`` with its id/name filters."""
    req.authorize(policy.IMAGES_LOOKUP)
    ids, names, properties = _filters(req)
    found = req.conductor.find_images(
        req.rpc_context(), ids=ids, names=names,
        properties=properties or None, caller=_caller(req))
    first = '/v2/images' + ('?' + req.query_string if req.query_string
                            else '')
    return util.json_response({'images': found, 'first': first,
                               'schema': '/v2/schemas/images'})


def show_image(req: util.Request, image_id: str) -> webob.Response:
    """Glance's ``GET /v2/images/{id}``: 404 when missing or not visible."""
    req.authorize(policy.IMAGES_LOOKUP_SHOW)
    found = []
    if len(image_id) <= 64:
        found = req.conductor.find_images(req.rpc_context(), ids=[image_id],
                                          caller=_caller(req))
    if not found:
        raise webob.exc.HTTPNotFound(
            detail='No image found with ID %s' % image_id[:80])
    return util.json_response(found[0])
