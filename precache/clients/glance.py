"""Glance v2 through a keystoneauth1 Adapter: image documents and bytes.

The conductor validates images (exists, visible to the caller, ``active``)
with the caller's token when it has one, many images per request
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
    """The few Glance v2 calls precache makes."""

    def __init__(self, adapter: Adapter | None = None) -> None:
        self._adapter = adapter

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            self._adapter = keystone.get_adapter(GROUP)
        return self._adapter

    def _headers(self, auth_token: str | None) -> dict[str, str]:
        if not auth_token:
            return {}
        headers = {'X-Auth-Token': auth_token}
        if CONF.service_user.send_service_user_token:
            service_auth = keystone.get_auth('service_user')
            if service_auth is not None:
                headers['X-Service-Token'] = service_auth.get_token(
                    keystone.get_session('service_user'))
        return headers

    def request(self, method: str, path: str, what: str,
                auth_token: str | None = None, **kwargs: Any
                ) -> requests.Response:
        """One request, retried on connection errors and 5xx.

        A caller's token replaces the service credentials; answers other
        than 5xx are returned for the caller to interpret.
        """
        headers = {**self._headers(auth_token), **kwargs.pop('headers', {})}
        if auth_token:
            kwargs['authenticated'] = False

        def once() -> requests.Response:
            response = self.adapter.request(
                path, method, headers=headers, raise_exc=False,
                connect_retries=0, **kwargs)
            if response.status_code >= 500:
                response.close()
                raise keystone.Retryable(status_reason(response))
            return response

        return keystone.retrying(GROUP, 'Glance %s' % what, once)

    def get_image(self, image_id: str,
                  auth_token: str | None = None) -> dict[str, Any]:
        """The image document, locations included when Glance shows them.

        :raises: ImageNotFound (404: missing or not visible),
            ImageNotUsable (401/403), ServiceUnavailable.
        """
        response = self.request('GET', '/v2/images/%s' % image_id,
                                'GET image %s' % image_id, auth_token)
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

    def list_images(self, image_ids: list[str],
                    auth_token: str | None = None) -> list[dict[str, Any]]:
        """Those of ``image_ids`` a list request shows (one request).

        A list hides some images a GET shows (``os_hidden``, other
        visibilities), so callers GET the ones missing here.
        """
        response = self.request(
            'GET', '/v2/images', 'list of %d image(s)' % len(image_ids),
            auth_token, params={'id': 'in:' + ','.join(image_ids),
                                'limit': len(image_ids)})
        if response.status_code != 200:
            LOG.warning('Glance image list failed (%s); checking images '
                        'one by one', status_reason(response))
            return []
        return list(response.json().get('images') or [])

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

    def get(self, image_id: str,
            auth_token: str | None = None) -> dict[str, Any]:
        return self.client.get_image(image_id, auth_token)

    def validate(self, image_ids: list[str],
                 auth_token: str | None = None) -> list[objects.ImageSpec]:
        """Like the base class, but many images per Glance request."""
        ids = images.normalize_ids(image_ids)
        found: dict[str, dict[str, Any]] = {}
        size = CONF.glance.batch_size
        for start in range(0, len(ids), size):
            batch = ids[start:start + size]
            if len(batch) > 1:
                found.update((image['id'], image) for image in
                             self.client.list_images(batch, auth_token))
        specs = []
        for image_id in ids:
            image = found.get(image_id) or self.get(image_id, auth_token)
            specs.append(images.spec_from_active(image_id, image))
        return specs


def translate_download_error(image_id: str, exc: Exception
                             ) -> exception.PrecacheException:
    """Errors seen while streaming, as ours (agent side)."""
    if isinstance(exc, exception.PrecacheException):
        return exc
    if isinstance(exc, ks_exc.ClientException):
        return keystone.translate(GROUP, exc)
    return exception.ImageFetchFailed(image=image_id, reason=str(exc))
