"""Image lookups in Glance v2's shape, for clients that send them here.

``nova --os-endpoint-override URL aggregate-cache-images`` sends its
image lookup (novaclient ``find_images``: ``GET /v2/images?id=in:…`` and
``?names=in:…``; ``find_image``: ``GET /v2/images/{id}``, ``?name=``) to
the compute endpoint it is given. precache-api answers them from the image
service as the caller sees it (Glance with the caller's token), read-only,
with the few fields a client reads and never an image's locations.
"""

from __future__ import annotations

import uuid
from typing import Any

from oslo_utils import uuidutils

from precache import exception
from precache.clients import glance, images

#: The fields shown (Glance v2 names); locations and the rest stay here.
FIELDS = ('id', 'name', 'status', 'visibility', 'size', 'disk_format',
          'container_format', 'created_at', 'updated_at')


def present(image: dict[str, Any]) -> dict[str, Any]:
    """An image as Glance v2 shows it, reduced to :data:`FIELDS`."""
    view = {field: image.get(field) for field in FIELDS}
    view['visibility'] = view['visibility'] or 'public'
    view['self'] = '/v2/images/%s' % image['id']
    view['schema'] = '/v2/schemas/image'
    return view


def _caller_glance(service: images.ImageService,
                   caller: dict[str, Any] | None
                   ) -> glance.GlanceClient | None:
    """Glance as the caller (its token), so Glance decides visibility."""
    token = (caller or {}).get('auth_token')
    if token and isinstance(service, glance.GlanceImageService):
        return service.client.as_caller(token)
    return None


def _get(service: images.ImageService, image_id: str,
         caller: dict[str, Any] | None) -> dict[str, Any] | None:
    client = _caller_glance(service, caller)
    try:
        if client is not None:
            return client.get_image(image_id)
        image = service.get(image_id)
    except (exception.NotFound, exception.ImageNotUsable):
        return None  # NOTE: Glance's answer: not visible is not found
    return image if images.visible_to(image, caller) else None


def _listing(service: images.ImageService, names: list[str] | None,
             properties: dict[str, str] | None,
             caller: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Active images; the image service filters (Glance server-side)."""
    wanted = dict(properties or {})
    if names and len(names) == 1:
        wanted['name'] = names[0]
    client = _caller_glance(service, caller)
    if client is not None:
        return client.find_images(properties=wanted or None)
    return [image for image in service.find(properties=wanted or None)
            if images.visible_to(image, caller)]


def find(service: images.ImageService, ids: list[str] | None = None,
         names: list[str] | None = None,
         properties: dict[str, str] | None = None,
         caller: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Glance's ``GET /v2/images`` for ``id``/``name`` (``in:`` lists)
    and other filters (exact values of image fields or properties, as
    Glance: a filter on a property no image has matches nothing).

    By id every image the caller may see answers, whatever its status;
    otherwise the active ones (the image service's listing). Ids that are
    not UUIDs match nothing, as in Glance.

    :raises: ServiceUnavailable
    """
    if ids is not None:
        wanted = dict.fromkeys(str(uuid.UUID(i)) for i in ids
                               if uuidutils.is_uuid_like(i))
        found = [image for image in (_get(service, i, caller)
                                     for i in wanted) if image]
    else:
        found = _listing(service, names, properties, caller)
    shown = []
    for image in found:
        view = present(image)
        fields = {**image, **view}
        if names is not None and view['name'] not in names:
            continue
        if all(key in fields and str(fields[key]) == str(value)
               for key, value in (properties or {}).items()):
            shown.append(view)
    return sorted(shown, key=lambda view: (view['created_at'] or '',
                                           view['id']), reverse=True)
