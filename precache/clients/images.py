"""Image services: validate images and read what agents need to fetch them.

This module holds the interface, the helpers every service shares
(:func:`spec_from_glance` ...) and ``local``, which reads a catalog file
with Glance's image fields; ``glance`` (:mod:`precache.clients.glance`)
plugs in behind the same interface. Both are entry points of
``precache.image_services``, chosen by ``[image_service] driver``.
"""

from __future__ import annotations

import abc
import json
import os
import pathlib
import uuid
from typing import Any

from oslo_utils import uuidutils

from precache import exception, objects, plugins
from precache.conf import CONF


def normalize_ids(image_ids: list[str]) -> list[str]:
    """Canonical lower-case dashed UUIDs; empty, bad or duplicate → 400.

    Nova compares raw strings, so ``ABC…`` and ``abc…`` pass its duplicate
    check; we compare the normalised form.
    """
    if not image_ids:
        raise exception.InvalidImageList(reason='no image given')
    normalized = []
    for image_id in image_ids:
        if not isinstance(image_id, str) or \
                not uuidutils.is_uuid_like(image_id):
            raise exception.InvalidImageList(
                reason='%r is not an image UUID' % (image_id,))
        normalized.append(str(uuid.UUID(image_id)))
    duplicates = sorted({i for i in normalized if normalized.count(i) > 1})
    if duplicates:
        raise exception.InvalidImageList(
            reason='duplicate image(s): %s' % ', '.join(duplicates))
    return normalized


def spec_from_glance(image: dict[str, Any]) -> objects.ImageSpec:
    """An ImageSpec from an image document shaped like Glance v2's."""
    locations = [loc['url'] for loc in image.get('locations') or []
                 if isinstance(loc, dict) and loc.get('url')]
    if image.get('direct_url') and image['direct_url'] not in locations:
        locations.append(image['direct_url'])
    return objects.ImageSpec(
        id=image['id'], size=image.get('size'), name=image.get('name'),
        disk_format=image.get('disk_format'),
        checksum=image.get('checksum'),
        os_hash_algo=image.get('os_hash_algo'),
        os_hash_value=image.get('os_hash_value'),
        locations=tuple(locations))


def spec_from_active(image_id: str, image: dict[str, Any]
                     ) -> objects.ImageSpec:
    """The spec of an image that must be ``active``, else 400."""
    status = image.get('status')
    if status != 'active':
        raise exception.ImageNotUsable(
            image=image_id, reason='status is %s, not active' % status)
    return spec_from_glance(image)


def visible_to(image: dict[str, Any], caller: dict[str, Any] | None) -> bool:
    """Glance's visibility rule, for sources that do not apply it.

    ``caller`` is the API's (``project_id``, ``is_admin``); internal
    callers (CLI, cron) pass none and see every image. ``members`` are
    the projects a shared image is shared with.
    """
    project = (caller or {}).get('project_id')
    if not project or (caller or {}).get('is_admin'):
        return True
    visibility = image.get('visibility') or 'public'
    if visibility in ('public', 'community') or \
            image.get('owner') in (None, project):
        return True
    return visibility == 'shared' and project in (image.get('members')
                                                  or ())


class ImageService(abc.ABC):
    @abc.abstractmethod
    def get(self, image_id: str) -> dict[str, Any]:
        """The image document; raises ImageNotFound."""

    def validate(self, image_ids: list[str],
                 caller: dict[str, Any] | None = None
                 ) -> list[objects.ImageSpec]:
        """Every image exists, is visible to ``caller`` and active →
        their specs. One the caller may not see is not found, as in
        Glance.

        :param caller: the API caller: ``project_id``, ``is_admin`` and
            ``auth_token`` (which this source does not need).
        """
        specs = []
        for image_id in normalize_ids(image_ids):
            image = self.get(image_id)
            if not visible_to(image, caller):
                raise exception.ImageNotFound(image=image_id)
            specs.append(spec_from_active(image_id, image))
        return specs

    @abc.abstractmethod
    def find(self, tag: str | None = None,
             properties: dict[str, str] | None = None
             ) -> list[dict[str, Any]]:
        """Active images carrying ``tag`` and every property with exactly
        that value (Glance's list filters); schedules and desired state
        resolve their image selectors with it."""


def matches(image: dict[str, Any], tag: str | None,
            properties: dict[str, str] | None) -> bool:
    """Whether an image document passes :meth:`ImageService.find`'s
    filters (Glance applies them itself; the local catalog here)."""
    if image.get('status') != 'active':
        return False
    if tag is not None and tag not in (image.get('tags') or ()):
        return False
    return all(key in image and str(image[key]) == str(value)
               for key, value in (properties or {}).items())


class LocalImageService(ImageService):
    """A JSON catalog of local images (the all-in-one mode's source)."""

    def __init__(self, catalog: str | None = None) -> None:
        self._catalog = catalog

    @property
    def catalog(self) -> str:
        return self._catalog or CONF.image_service.local_catalog

    def _images(self) -> dict[str, dict[str, Any]]:
        try:
            with open(self.catalog) as stream:
                images = json.load(stream)
        except (OSError, ValueError) as exc:
            raise exception.ServiceUnavailable(
                service='image catalog %s' % self.catalog,
                reason=str(exc)) from exc
        base = os.path.dirname(os.path.abspath(self.catalog))
        found = {}
        for image in images:
            image = dict(image)
            # NOTE: as_uri() quotes the path; a '#', '?' or '%' in it
            # would otherwise be read as URL syntax by the file backend.
            # Relative paths are relative to the catalog; URLs of other
            # schemes (rbd://<fsid>/<pool>/<image>/<snap>) pass as they are.
            image['locations'] = [
                {'url': pathlib.Path(base, loc['url']).as_uri()
                 if not loc['url'].startswith(('/', 'file:'))
                 and '://' not in loc['url'] else
                 loc['url']} for loc in image.get('locations', [])]
            found[image['id']] = image
        return found

    def get(self, image_id: str) -> dict[str, Any]:
        image = self._images().get(image_id)
        if image is None:
            raise exception.ImageNotFound(image=image_id)
        return image

    def find(self, tag: str | None = None,
             properties: dict[str, str] | None = None
             ) -> list[dict[str, Any]]:
        return [image for image in self._images().values()
                if matches(image, tag, properties)]


def load(name: str | None = None) -> ImageService:
    """The image service named by ``[image_service] driver`` (or
    ``name``)."""
    service: ImageService = plugins.load_driver(
        plugins.IMAGE_SERVICES, name or CONF.image_service.driver)
    return service
