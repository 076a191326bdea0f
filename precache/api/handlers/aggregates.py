"""``/os-aggregates``: Nova's reads and its POST of images, and what is there.

The aggregate may be named by Nova's integer id or, an extension, by its
uuid or name. As in Nova a missing image is 400 (the request is wrong), a
missing aggregate 404. The reads exist because the stock CLIs
(``openstack aggregate cache image``, ``nova aggregate-cache-images``)
look the aggregate up before they post; they answer from the conductor's
inventory in Nova's format.
"""

from __future__ import annotations

from typing import Any

import webob
import webob.exc

from precache import exception
from precache.api import microversion, policy, schemas, util
from precache.api.handlers import jobs as jobs_handlers

#: The first version whose aggregates show their uuid (as in Nova).
AGGREGATE_UUID = (2, 41)


def _nova_id(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def present_aggregate(req: util.Request,
                      aggregate: dict[str, Any]) -> dict[str, Any]:
    """Nova's view of an aggregate (nova/api/openstack/compute/
    aggregates.py ``_marshall_aggregate``)."""
    metadata = dict(aggregate.get('metadata') or {})
    view = {'id': _nova_id(str(aggregate['id'])),
            'name': aggregate['name'],
            'availability_zone': metadata.get('availability_zone'),
            'hosts': list(aggregate.get('hosts') or ()),
            'metadata': metadata,
            'created_at': aggregate.get('created_at'),
            'updated_at': aggregate.get('updated_at'),
            'deleted': False, 'deleted_at': None}
    if req.api_version >= AGGREGATE_UUID:
        view['uuid'] = aggregate.get('uuid')
    return view


def list_aggregates(req: util.Request) -> webob.Response:
    """Nova's ``GET /os-aggregates``: every aggregate of the inventory."""
    req.authorize(policy.AGGREGATES_INDEX)
    found = req.conductor.list_aggregates(req.rpc_context())
    return util.json_response(
        {'aggregates': [present_aggregate(req, a) for a in found]})


def show_aggregate(req: util.Request, aggregate_id: str) -> webob.Response:
    """Nova's ``GET /os-aggregates/{id}`` (by uuid or name too)."""
    req.authorize(policy.AGGREGATES_SHOW)
    found = req.conductor.get_aggregate(req.rpc_context(),
                                        _aggregate_ref(aggregate_id))
    return util.json_response({'aggregate': present_aggregate(req, found)})


def _aggregate_ref(aggregate_id: str) -> str:
    if len(aggregate_id) > 255 or not aggregate_id.isprintable():
        raise webob.exc.HTTPNotFound(
            detail='Aggregate %r could not be found.' % aggregate_id[:80])
    return aggregate_id


def cache_images(req: util.Request, aggregate_id: str) -> webob.Response:
    """Accept a job (202) with a Location and the job in the body."""
    microversion.require(req.environ, microversion.AGGREGATE_IMAGES)
    req.authorize(policy.IMAGES_CREATE)
    body = util.json_body(req)
    schemas.validate(schemas.CACHE_IMAGES, body)
    image_ids = schemas.image_ids(body)
    # NOTE: Glance validates the images with the caller's own token, so
    # it decides what the caller may see; the token rides in the RPC
    # payload only (never the logged context).
    caller = {'project_id': req.context.project_id,
              'is_admin': policy.check(req.credentials, 'context_is_admin'),
              'auth_token': req.context.auth_token}
    aggregate = _aggregate_ref(aggregate_id)
    try:
        job = req.conductor.cache_images(req.rpc_context(), aggregate,
                                         image_ids, {'source': 'api'},
                                         caller=caller)
    except exception.ImageNotFound as exc:
        # NOTE: Nova's answer to an image that is missing or not visible.
        raise webob.exc.HTTPBadRequest(detail=exc.message) from None
    # NOTE: the pending rows (hosts x images) are at Location; an answer
    # the size of the aggregate would slow every client down.
    job.results = None
    location = req.url('/jobs/%s' % job.id)
    return util.json_response({'job': jobs_handlers.present(req, job)},
                              status=202, headers={'Location': location})


def list_images(req: util.Request, aggregate_id: str) -> webob.Response:
    """Per host, the images resident as last reported, and per image the
    hosts that hold it."""
    req.authorize(policy.IMAGES_LIST)
    aggregate = _aggregate_ref(aggregate_id)
    found: dict[str, Any] = req.conductor.get_resident_images(
        req.rpc_context(), aggregate)
    images: dict[str, list[str]] = {}
    for host in found['hosts']:
        for image in host['images']:
            images.setdefault(image['id'], []).append(host['host'])
    found['images'] = images
    return util.json_response(found)
