"""Make images resident on this host: the agent's one feature.

For each image, under the image's lock: resident → touch → ``existing``;
otherwise the first enabled backend that can serve it fetches it into the
store's sink (a temporary, verified, and converted when the store keeps
images raw), which the store then installs atomically → ``cached``.
Nothing half-written is ever visible under the final name. The cache
knows stores only through :class:`precache.agent.stores.base.Store`.
"""

from __future__ import annotations

import logging
import time
from concurrent import futures

from precache import context, exception, objects
from precache.agent.backends.base import Backend
from precache.agent.stores.base import Store
from precache.conf import CONF

LOG = logging.getLogger(__name__)

State = objects.HostImageState


class ImageCache:
    """The images of one host's store, filled from ordered backends."""

    def __init__(self, host: str, store: Store,
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
                self.store.check_room(image)
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

    def _fetch(self, backend: Backend, image: objects.ImageSpec) -> int:
        sink = self.store.open_sink(image)
        try:
            return sink.commit(backend.fetch(image, sink))
        except BaseException:
            sink.discard()
            raise
