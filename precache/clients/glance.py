"""Glance v2 through a keystoneauth1 Adapter: image documents and bytes.

The conductor validates images (exists, visible to the caller, ``active``)
with the API caller's token when it has one, so that Glance itself answers
404 for an image the caller may not see, many images per request
(``GET /v2/images?id=in:…``); agents download with the service
credentials of ``[glance]``. HTTP and keystoneauth errors become
:mod:`precache.exception` errors here and nowhere else; connection errors
and 5xx answers are retried with backoff (``[glance] num_retries``).
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1.adapter import Adapter

from precache import exception, objects
from precache.clients import images, keystone
from precache.conf import CONF

LOG = logging.getLogger(__name__)

GROUP = 'glance'


def status_reason(response: requests.Response) -> str:
    text = (response.text or '').strip().replace('\n', ' ')
    return 'HTTP %d%s' % (response.status_code,
                          ': %s' % text[:200] if text else '')


class GlanceClient:
    """The few Glance v2 calls precache makes.

    With ``auth_token`` every request authenticates as that API caller
    (see :func:`keystone.get_user_adapter`), else with the service
    credentials of ``[glance]``.
    """

    def __init__(self, adapter: Adapter | None = None,
                 auth_token: str | None = None) -> None:
        self._adapter = adapter
        self._auth_token = auth_token

    def as_caller(self, auth_token: str) -> GlanceClient:
        """A client that authenticates with an API caller's token."""
        return GlanceClient(auth_token=auth_token)

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            self._adapter = keystone.get_user_adapter(
                GROUP, self._auth_token) if self._auth_token else \
                keystone.get_adapter(GROUP)
        return self._adapter

    def request(self, method: str, path: str, what: str, **kwargs: Any
                ) -> requests.Response:
        """One request, retried on connection errors and 5xx.

        Answers other than 5xx are returned for the caller to interpret.
        """
        headers = kwargs.pop('headers', {})

        def once() -> requests.Response:
            response = self.adapter.request(
                path, method, headers=headers, raise_exc=False,
                connect_retries=0, **kwargs)
            if response.status_code >= 500:
                response.close()
                raise keystone.Retryable(status_reason(response))
            return response

        return keystone.retrying(GROUP, 'Glance %s' % what, once)

    def get_image(self, image_id: str) -> dict[str, Any]:
        """The image document, locations included when Glance shows them.

        :raises: ImageNotFound (404: missing or not visible),
            ImageNotUsable (401/403), ServiceUnavailable.
        """
        response = self.request('GET', '/v2/images/%s' % image_id,
                                'GET image %s' % image_id)
        if response.status_code == 200:
            return dict(response.json())
        if response.status_code == 404:
            raise exception.ImageNotFound(image=image_id)
        if response.status_code in (401, 403):
            raise exception.ImageNotUsable(
                image=image_id, reason='not visible to the caller (%s)'
                % status_reason(response))
        raise exception.ServiceUnavailable(
            service=keystone.describe(GROUP),
            reason='GET image %s: %s' % (image_id, status_reason(response)))

    def list_images(self, image_ids: list[str]) -> list[dict[str, Any]]:
        """Those of ``image_ids`` a list request shows (one request).

        A list hides some images a GET shows (``os_hidden``, other
        visibilities), so callers GET the ones missing here.
        """
        response = self.request(
            'GET', '/v2/images', 'list of %d image(s)' % len(image_ids),
            params={'id': 'in:' + ','.join(image_ids),
                    'limit': len(image_ids)})
        if response.status_code != 200:
            LOG.warning('Glance image list failed (%s); checking images '
                        'one by one', status_reason(response))
            return []
        return list(response.json().get('images') or [])

    def is_member(self, image_id: str, project_id: str) -> bool:
        """Whether ``project_id`` is a member of a shared image (any
        status: a member may GET an image it has not accepted)."""
        response = self.request(
            'GET', '/v2/images/%s/members/%s' % (image_id, project_id),
            'GET member %s of image %s' % (project_id, image_id))
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise exception.ServiceUnavailable(
            service=keystone.describe(GROUP),
            reason='GET member of image %s: %s' % (image_id,
                                                   status_reason(response)))

    def find_images(self, tag: str | None = None,
                    properties: dict[str, str] | None = None,
                    page_size: int = 200) -> list[dict[str, Any]]:
        """Active images with ``tag`` and these exact property values,
        every page (``GET /v2/images?tag=…&<prop>=…``, then ``next``).

        :raises: ServiceUnavailable
        """
        params: dict[str, Any] = {'status': 'active', 'limit': page_size,
                                  **(properties or {})}
        if tag is not None:
            params['tag'] = tag
        found: list[dict[str, Any]] = []
        path: str | None = '/v2/images'
        while path:
            response = self.request('GET', path, 'image search', params=params)
            if response.status_code != 200:
                raise exception.ServiceUnavailable(
                    service=keystone.describe(GROUP),
                    reason='image search: %s' % status_reason(response))
            body = response.json()
            found.extend(body.get('images') or [])
            # NOTE: ``next`` carries the marker and every filter.
            path, params = body.get('next'), {}
        return found

    def open_download(self, image_id: str, offset: int = 0
                      ) -> requests.Response:
        """A streaming ``GET /v2/images/{id}/file`` from ``offset``.

        The caller checks the status: 200 (whole image), 206 (from
        ``offset``), 204 (no data), 404, 400/416 (Range refused: Glance's
        RBD store refuses every Range).
        """
        headers = {'Range': 'bytes=%d-' % offset} if offset else {}
        return self.request(
            'GET', '/v2/images/%s/file' % image_id,
            'download of image %s' % image_id, headers=headers, stream=True,
            timeout=CONF.glance.read_timeout)


class GlanceImageService(images.ImageService):
    """Image service ``glance``: validation and specs from Glance v2."""

    def __init__(self, client: GlanceClient | None = None) -> None:
        self.client = client or GlanceClient()

    def check(self) -> None:
        """Authenticate and find Glance now (service start-up)."""
        keystone.check(GROUP)

    def get(self, image_id: str) -> dict[str, Any]:
        """The image document, with the service credentials."""
        return self.client.get_image(image_id)

    def find(self, tag: str | None = None,
             properties: dict[str, str] | None = None
             ) -> list[dict[str, Any]]:
        # NOTE: re-checked so that both image services answer alike
        # (a property Glance does not filter on would pass otherwise).
        return [image for image in self.client.find_images(tag, properties)
                if images.matches(image, tag, properties)]

    def validate(self, image_ids: list[str],
                 caller: dict[str, Any] | None = None
                 ) -> list[objects.ImageSpec]:
        """Like the base class, but many images per Glance request, and
        Glance decides what the caller sees.

        With the caller's ``auth_token`` every request carries it, so an
        image the caller may not see is Glance's own 404. A caller without
        one (an API older than RPC 1.3) gets Glance's rule applied here
        over what the service credentials see.
        """
        ids = images.normalize_ids(image_ids)
        token = (caller or {}).get('auth_token')
        client = self.client.as_caller(token) if token else self.client
        found: dict[str, dict[str, Any]] = {}
        size = CONF.glance.batch_size
        for start in range(0, len(ids), size):
            batch = ids[start:start + size]
            if len(batch) > 1:
                found.update((image['id'], image) for image in
                             client.list_images(batch))
        specs = []
        for image_id in ids:
            image = found.get(image_id) or client.get_image(image_id)
            if not token and not self._visible(image, caller):
                raise exception.ImageNotFound(image=image_id)
            specs.append(images.spec_from_active(image_id, image))
        return specs

    def _visible(self, image: dict[str, Any],
                 caller: dict[str, Any] | None) -> bool:
        if images.visible_to(image, caller):
            return True
        if image.get('visibility') != 'shared' or caller is None:
            return False
        # NOTE: Glance's image document does not list members.
        return self.client.is_member(image['id'], caller['project_id'])


def translate_download_error(image_id: str, exc: Exception
                             ) -> exception.PrecacheException:
    """Errors seen while streaming, as ours (agent side)."""
    if isinstance(exc, exception.PrecacheException):
        return exc
    if isinstance(exc, ks_exc.ClientException):
        return keystone.translate(GROUP, exc)
    return exception.ImageFetchFailed(image=image_id, reason=str(exc))
