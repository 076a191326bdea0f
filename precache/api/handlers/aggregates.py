"""``/os-aggregates/{aggregate_id}/images``: Nova's POST, and what is there.

The aggregate may be named by Nova's integer id or, an extension, by its
uuid or name. As in Nova a missing image is 400 (the request is wrong), a
missing aggregate 404.
"""

from __future__ import annotations

from typing import Any

import webob
import webob.exc

from precache import exception
from precache.api import microversion, policy, schemas, util
from precache.api.handlers import jobs as jobs_handlers


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
