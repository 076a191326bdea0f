"""Backend ``glance-http``: download the image from Glance, resuming.

The fallback when no RBD path fits. Nova retries only while opening the
download and starts over (or fails) when a stream breaks; here a broken
stream resumes with ``Range: bytes=<written>-`` where Glance's store
allows it (file store: 206), the hash continuing where it was, so a
resumed download is verified exactly like a whole one and no byte kept
is transferred twice. Where the store refuses ranges (RBD store: 400) the
download starts over from byte 0 with a new hash, at most ``[glance]
download_restarts`` times. Either way the result says so (its reason,
on a ``cached`` row). Memory stays at one chunk; the file is fsynced and
the cache installs it atomically.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass
class _Progress:
    """What one fetch went through, for its result."""

    received: int = 0     # body bytes taken from the streams, all attempts
    resumes: int = 0      # streams continued with Range (206)
    restarts: int = 0     # downloads started over from byte 0
    why_restart: str = ''

    def note(self, size: int) -> str | None:
        """``resumed 3 times with Range; 1048576 bytes received for
        1048576``, or None when the first stream was enough."""
        done = []
        if self.resumes:
            done.append('resumed %s with Range' % _times(self.resumes))
        if self.restarts:
            done.append('restarted %s from byte 0 (%s)'
                        % (_times(self.restarts), self.why_restart))
        if not done:
            return None
        return '%s; %d bytes received for %d' % (', '.join(done),
                                                 self.received, size)


def _times(count: int) -> str:
    return 'once' if count == 1 else '%d times' % count


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
        progress = _Progress()
        failures, use_range = 0, True
        try:
            while True:
                before = offset = writer.written if use_range else 0
                try:
                    self._stream(image, writer, offset)
                    size = writer.finish()
                    break
                except _Restart as restart:
                    LOG.warning('Image %(image)s: %(why)s; downloading '
                                'again from the start',
                                {'image': image.id, 'why': restart})
                    use_range, progress.why_restart = False, str(restart)
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
                                '%(at)d (%(err)s); %(next)s',
                                {'image': image.id, 'at': writer.written,
                                 'err': exc, 'next': 'resuming' if use_range
                                 else 'starting over'})
                    time.sleep(min(30.0, CONF.glance.retry_delay
                                   * 2 ** max(failures - 1, 0)))
                finally:
                    progress.received += writer.written - before
                    if offset and writer.written > before:
                        progress.resumes += 1
                if writer.written and not use_range:
                    self._count_restart(image, writer, progress)
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
        note = progress.note(size)
        if note:
            writer.sink.notes.append(note)
            LOG.info('Image %(image)s: %(note)s',
                     {'image': image.id, 'note': note})
        return size

    @staticmethod
    def _count_restart(image: objects.ImageSpec, writer: VerifyingWriter,
                       progress: _Progress) -> None:
        """One more start from byte 0, or the end when there were
        ``[glance] download_restarts`` already."""
        if progress.restarts >= CONF.glance.download_restarts:
            raise exception.ImageFetchFailed(
                image=image.id, reason='stream broke at byte %d and cannot '
                'be resumed (%s); started over %d of [glance] '
                'download_restarts = %d times' % (
                    writer.written, progress.why_restart, progress.restarts,
                    CONF.glance.download_restarts))
        progress.restarts += 1

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
