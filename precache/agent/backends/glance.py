"""Backend ``glance-http``: download the image from Glance, resuming.

The fallback when no RBD path fits. Nova retries only while opening the
download and starts over (or fails) when a stream breaks; here a broken
stream resumes with ``Range: bytes=<written>-`` where Glance's store
allows it (file store: 206) and restarts from zero where it does not
(RBD store: 400). The hash is computed as the bytes arrive, so a resumed
download is verified exactly like a whole one; memory stays at one chunk;
the file is fsynced and the cache installs it atomically.
"""

from __future__ import annotations

import logging
import time

import requests
import urllib3
from keystoneauth1 import exceptions as ks_exc

from precache import exception, objects
from precache.agent.backends import base
from precache.agent.stores.base import Sink
from precache.agent.stream import VerifyingWriter
from precache.clients import glance
from precache.conf import CONF

LOG = logging.getLogger(__name__)

#: Errors that mean "the stream broke", worth resuming.
STREAM_ERRORS = (requests.exceptions.ChunkedEncodingError,
                 requests.exceptions.ConnectionError,
                 requests.exceptions.Timeout,
                 urllib3.exceptions.HTTPError,
                 ks_exc.ConnectionError,
                 ConnectionError)


class _Restart(Exception):
    """The server ignored or refused our Range: start from byte 0."""


class GlanceHTTPBackend(base.Backend):
    name = 'glance-http'
    method = objects.Method.GLANCE_HTTP

    def __init__(self, client: glance.GlanceClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> glance.GlanceClient:
        if self._client is None:
            self._client = glance.GlanceClient()
        return self._client

    def check(self) -> None:
        """Authenticate and find Glance now (agent start-up)."""
        from precache.clients import keystone

        keystone.check(glance.GROUP)

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        return None  # Glance can serve every image it has data for.

    def _writer(self, image: objects.ImageSpec,
                sink: Sink) -> VerifyingWriter:
        return VerifyingWriter(image, sink,
                               CONF.agent.download_rate_limit)

    def fetch(self, image: objects.ImageSpec, sink: Sink) -> int:
        writer = self._writer(image, sink)
        failures, use_range = 0, True
        try:
            while True:
                before = writer.written
                try:
                    self._stream(image, writer,
                                 writer.written if use_range else 0)
                    return writer.finish()
                except _Restart as restart:
                    LOG.warning('Image %(image)s: %(why)s; downloading '
                                'again from the start',
                                {'image': image.id, 'why': restart})
                    use_range = False
                except STREAM_ERRORS as exc:
                    # NOTE: progress resets the count: a long download
                    # over a flaky link may break many times, as long
                    # as every attempt gets further.
                    failures = 0 if writer.written > before else failures + 1
                    if failures > CONF.glance.num_retries:
                        raise exception.ImageFetchFailed(
                            image=image.id, reason='stream broke %d times '
                            'without progress at byte %d: %s' % (
                                failures, writer.written, exc)) from exc
                    LOG.warning('Image %(image)s: stream broke at byte '
                                '%(at)d (%(err)s); resuming',
                                {'image': image.id, 'at': writer.written,
                                 'err': exc})
                    time.sleep(min(30.0, CONF.glance.retry_delay
                                   * 2 ** max(failures - 1, 0)))
                if not use_range or writer.written == 0:
                    writer.abort()
                    writer = self._writer(image, sink)
        except exception.BackendError:
            writer.abort()
            raise
        except Exception as exc:
            # NOTE: e.g. Glance unreachable after every retry: still a
            # failed fetch, so the next backend (if any) gets its turn.
            writer.abort()
            error = glance.translate_download_error(image.id, exc)
            raise exception.ImageFetchFailed(
                image=image.id, reason=str(error)) from exc
        except BaseException:
            writer.abort()
            raise

    def _stream(self, image: objects.ImageSpec, writer: VerifyingWriter,
                offset: int) -> None:
        """Append the image from ``offset`` to ``writer``."""
        response = self.client.open_download(image.id, offset)
        try:
            self._check(image, response, offset)
            for chunk in response.iter_content(CONF.agent.chunk_size * 1024):
                writer.write(chunk)
        finally:
            response.close()

    def _check(self, image: objects.ImageSpec, response: requests.Response,
               offset: int) -> None:
        status = response.status_code
        if status == 404:
            raise exception.ImageFetchFailed(
                image=image.id, reason='image not found in Glance (deleted '
                'since the job was accepted?)')
        if status == 204:
            raise exception.ImageFetchFailed(
                image=image.id, reason='Glance has no data for this image')
        if offset and status in (400, 416):
            raise _Restart('Glance refused Range from byte %d (HTTP %d)'
                           % (offset, status))
        if offset and status == 200:
            raise _Restart('Glance ignored Range from byte %d' % offset)
        if offset and status == 206:
            start = response.headers.get('Content-Range', '').split(
                ' ')[-1].split('-')[0]
            if start != str(offset):
                raise _Restart('Glance answered Content-Range %r for byte '
                               '%d' % (response.headers.get(
                                   'Content-Range'), offset))
            return
        if status != 200:
            raise exception.ImageFetchFailed(
                image=image.id, reason='Glance answered %s'
                % glance.status_reason(response))
