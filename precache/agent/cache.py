"""Make images resident on this host: the agent's one feature.

For each image, under the image's lock: resident → touch → ``existing``;
otherwise the first enabled backend that can serve it fetches it into a
temporary file, verified (and, for a file store that keeps images raw,
converted from the format Glance holds), which is then renamed into place
→ ``cached``. Nothing half-written is ever visible under the final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent import futures
from typing import Any

from precache import context, exception, objects
from precache.agent import convert
from precache.agent.backends.base import Backend
from precache.agent.rbd.store import RbdStore
from precache.agent.store import TEMP_SUFFIX, FileStore
from precache.conf import CONF

LOG = logging.getLogger(__name__)

State = objects.HostImageState


class ImageCache:
    """The images of one host's store, filled from ordered backends."""

    def __init__(self, host: str, store: FileStore | RbdStore,
                 backends: list[Backend]) -> None:
        self.host = host
        self.store = store
        self.backends = backends
        for backend in backends:
            backend.bind(store)

    def start(self) -> None:
        self.store.prepare()
        for path in self.store.remove_stale_temp_files():
            LOG.warning('Removed %s, left by an interrupted fetch', path)

    def ensure_all(self, images: list[objects.ImageSpec]
                   ) -> list[objects.HostImageResult]:
        """Ensure every image, a few at a time; one result per image.

        The workers log under the caller's request context."""
        workers = min(CONF.agent.max_concurrent_images, len(images)) or 1
        with futures.ThreadPoolExecutor(
                workers, thread_name_prefix='cache') as pool:
            return list(pool.map(context.carried(self.ensure), images))

    def ensure(self, image: objects.ImageSpec) -> objects.HostImageResult:
        """Make one image resident; never raises."""
        result = objects.HostImageResult(
            host=self.host, image_id=image.id, state=State.ERROR,
            started_at=objects.utcnow())
        start = time.monotonic()
        try:
            if isinstance(self.store, FileStore):
                self.store.check_writable(image)
            with self.store.lock(image.id):
                self._ensure_locked(image, result)
        except exception.PrecacheException as exc:
            result.state, result.reason = State.ERROR, str(exc)
        except Exception as exc:  # noqa: BLE001 - reported, not lost
            LOG.exception('Unexpected error caching image %s', image.id)
            result.state = State.ERROR
            result.reason = 'unexpected error: %s' % exc
        result.seconds = time.monotonic() - start
        result.finished_at = objects.utcnow()
        log = LOG.warning if result.state is State.ERROR else LOG.info
        log('Image %(image)s on %(host)s: %(state)s%(how)s',
            {'image': image.id, 'host': self.host,
             'state': result.state.value,
             'how': ' (%s)' % result.reason if result.reason else
             ' via %s, %d bytes in %.1fs' % (result.method.value,
                                             result.bytes, result.seconds)
             if result.method else ''})
        return result

    def _ensure_locked(self, image: objects.ImageSpec,
                       result: objects.HostImageResult) -> None:
        if self.store.is_resident(image):
            self.store.touch(image)
            result.state = State.EXISTING
            return
        reasons, attempted = [], False
        for backend in self.backends:
            if self.store.kind not in backend.store_kinds:
                reasons.append('%s: cannot fill a %s store' % (
                    backend.name, self.store.kind))
                continue
            why_not = backend.unsupported_reason(image)
            if why_not:
                reasons.append('%s: %s' % (backend.name, why_not))
                continue
            if not attempted:
                self._check_room(image)
            attempted = True
            try:
                result.bytes = self._fetch(backend, image)
            except exception.CacheStoreError:
                raise  # a full or read-only cache: no backend can help
            except exception.BackendError as exc:
                LOG.warning('Backend %(backend)s failed for image '
                            '%(image)s: %(err)s', {'backend': backend.name,
                                                   'image': image.id,
                                                   'err': exc})
                reasons.append('%s: %s' % (backend.name, exc))
                continue
            result.state, result.method = State.CACHED, backend.method
            return
        result.state = State.ERROR if attempted else State.UNSUPPORTED
        result.reason = '; '.join(reasons) or 'no backend enabled'

    def _check_room(self, image: objects.ImageSpec) -> None:
        """Fail at once, writing nothing, when the file store has less
        free space than the image's size
        (twice that when it is converted to raw: the image as Glance holds
        it and the raw file exist together). A raw image of holes may need
        less; a qcow2's raw file may need more (its virtual size, unknown
        until fetched). The rbd store is not checked: librbd gives no free
        space of a pool (the pool's MAX AVAIL needs a monitor command).
        """
        if not isinstance(self.store, FileStore):
            return
        if image.size is not None:
            copies = 2 if convert.needs_conversion(image) else 1
            self.store.check_space(image, image.size * copies)

    def _fetch(self, backend: Backend, image: objects.ImageSpec) -> int:
        # NOTE: a path for the file store, an RbdTarget for the rbd store.
        temp: Any = self.store.temp_path(image.id)
        self.store.discard(temp)
        try:
            if self.store.kind == 'file' and convert.needs_conversion(image):
                size = self._fetch_as_raw(backend, image, temp)
            else:
                size = backend.fetch(image, temp)
            self.store.install(image, temp)
        except BaseException:
            self.store.discard(temp)
            raise
        return size

    @staticmethod
    def _fetch_as_raw(backend: Backend, image: objects.ImageSpec,
                      temp: str) -> int:
        """Fetch and verify as Glance holds it, then convert into ``temp``.

        Whatever the backend: a qcow2 under Nova's raw ``_base`` name
        would be booted as raw bytes.
        """
        # NOTE: <sha1>.src.precache.part: the store's start-up clean-up
        # removes it too.
        source = (temp[:-len(TEMP_SUFFIX)] if temp.endswith(TEMP_SUFFIX)
                  else temp) + '.src' + TEMP_SUFFIX
        try:
            backend.fetch(image, source)
            return convert.to_raw(image, source, temp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(source)
