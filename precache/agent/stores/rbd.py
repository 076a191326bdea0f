"""Store ``rbd``, for RBD-backed computes: RBD images in the compute's pool.

A resident image is the RBD image ``<image id>`` in ``[rbd_store] pool``
with a protected snapshot ``snap`` — the layout of Glance's RBD store, so
``rbd://<fsid>/<pool>/<image id>/snap`` is a location instances can be
cloned from. Its sink is a temporary RBD image ``<image id>.<random>.
precache.part`` (a clone, or a verified sparse copy), renamed into place
once its snapshot is protected, so a half-made image never carries the
final name. Nothing is written to the host's ``_base`` folder.

Every compute of a cluster shares the pool, so the per-image lock is a
RADOS lock in the pool (object ``precache.lock.<image id>``, renewed while
held, lapsing ``[rbd_store] lock_lease`` seconds after its holder died),
taken after a per-process thread lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from precache import exception, objects
from precache.agent import rbd as rbd_mod
from precache.agent.rbd import clusters, locations, locks
from precache.agent.sparse import nonzero_runs
from precache.agent.stores import base
from precache.conf import CONF
from precache.conf import ceph as ceph_conf

LOG = logging.getLogger(__name__)

TEMP_SUFFIX = '.precache.part'
SNAPSHOT = 'snap'
LOCK_OBJECT_PREFIX = 'precache.lock.'
#: Image metadata: when precache made it resident, last confirmed it.
STAMP_CACHED = 'precache.cached_at'
STAMP_TOUCHED = 'precache.touched_at'
STAMP_SOURCE = 'precache.source'

_UUID = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}$')

_thread_locks: dict[tuple[str, str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


#: The disk formats the store holds: instances boot from clones as raw.
RAW_FORMATS = (None, 'raw')


class RbdSink(base.Sink):
    """A temporary RBD image in the store's pool, written at offsets from
    several threads (librbd serialises what it must), or a clone.

    librbd errors are left to the backend, which translates them with
    its own words (see :func:`precache.agent.rbd.translate_rbd_errors`).
    """

    def __init__(self, store: RbdStore, image: objects.ImageSpec,
                 name: str) -> None:
        super().__init__(image)
        self.store = store
        self.cluster = store.cluster
        self.pool = store.pool
        self.name = name
        self._stack = contextlib.ExitStack()
        self._image: Any = None

    def __str__(self) -> str:
        return 'rbd:%s/%s/%s' % (self.cluster.name, self.pool, self.name)

    def begin(self, size: int | None) -> None:
        if size is None:
            raise exception.CacheStoreError(
                image=self.image.id, reason='the rbd store needs the size '
                'of an image before writing it')
        self._start_over()
        rbd = rbd_mod.rbd
        ioctx = self._stack.enter_context(self.cluster.ioctx(self.pool))
        rbd.RBD().create(ioctx, self.name, size, old_format=False)
        self._image = self._stack.enter_context(rbd.Image(ioctx, self.name))

    def write(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        written = 0
        for start, end in nonzero_runs(data):
            chunk = bytes(view[start:end]) if end - start != len(data) \
                else data
            self._image.write(chunk, offset + start)
            written += end - start
        return written

    def finish(self, size: int) -> None:
        self._image.flush()

    def close(self) -> None:
        self._image = None
        self._stack.close()

    def clone_from(self, location: locations.RbdLocation) -> int:
        """A copy-on-write clone of a snapshot of the store's cluster."""
        rbd = rbd_mod.rbd
        self._start_over()
        with self.cluster.ioctx(location.pool) as source_ioctx, \
                self.cluster.ioctx(self.pool) as target_ioctx:
            rbd.RBD().clone(source_ioctx, location.image, location.snapshot,
                            target_ioctx, self.name)
            with rbd.Image(target_ioctx, self.name,
                           read_only=True) as clone:
                return int(clone.size())

    def interrupted(self) -> str | None:
        return self.store.lock_lost(self.image.id)

    def commit(self, size: int) -> int:
        self.close()
        self.store.install(self.image, self.name)
        return size

    def discard(self) -> None:
        self.close()
        self.store.remove_temporary(self.image.id, self.name)

    def _start_over(self) -> None:
        self.close()
        self.store.remove_temporary(self.image.id, self.name)


class RbdStore(base.Store):
    """The images of an RBD-backed compute: see the module doc."""

    kind = base.StoreKind.RBD

    def __init__(self, cluster: str | None = None, pool: str | None = None,
                 host: str | None = None) -> None:
        super().__init__(host)
        self._cluster_name = cluster
        self._pool = pool
        self._held: dict[str, locks.HeldLock] = {}

    def __str__(self) -> str:
        return self.base_dir

    # -- where --

    @property
    def cluster_name(self) -> str:
        return (self._cluster_name or CONF.rbd_store.cluster
                or ceph_conf.DEFAULT_CLUSTER)

    @property
    def cluster(self) -> clusters.Cluster:
        return clusters.get(self.cluster_name)

    @property
    def pool(self) -> str:
        return self._pool or CONF.rbd_store.pool

    @property
    def base_dir(self) -> str:
        """Where the cache lives, for logs (the file store's folder)."""
        return 'rbd:%s/%s' % (self.cluster_name, self.pool)

    def name(self, image_id: str) -> str:
        return image_id

    def temp_name(self, image_id: str) -> str:
        """A new temporary name, ``<image id>.<random>.precache.part``.

        New for each fetch: the leftover of an agent killed mid-copy stays
        watched (and exclusively locked) by its dead client for ~30 s
        (osd_client_watch_timeout), and librbd cannot remove it until
        then; a fresh name lets the next fetch start at once.
        """
        return '%s.%s%s' % (image_id, uuid.uuid4().hex[:12], TEMP_SUFFIX)

    def open_sink(self, image: objects.ImageSpec) -> RbdSink:
        sink = RbdSink(self, image, self.temp_name(image.id))
        self.remove_temporary(image.id, sink.name)
        return sink

    def check_room(self, image: objects.ImageSpec) -> None:
        """Not checked: librbd gives no free space of a pool (the pool's
        MAX AVAIL needs a monitor command)."""

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        if image.disk_format not in RAW_FORMATS:
            return ('disk_format is %s: the rbd store holds raw images '
                    'only' % image.disk_format)
        return None

    def clone_sources(self, candidates: list[locations.RbdLocation]
                      ) -> tuple[list[locations.RbdLocation], str | None]:
        """The locations on this store's cluster."""
        try:
            fsid = self.cluster.fsid()
        except exception.BackendError as exc:
            return [], 'store cluster unusable: %s' % exc.kwargs.get(
                'reason', exc)
        same = [loc for loc in candidates if loc.fsid.lower() == fsid]
        if not same:
            return [], ('no location on the store\'s cluster %s (fsid %s)'
                        % (self.cluster.name, fsid))
        return same, None

    def location(self, image_id: str) -> str:
        """The RBD location of the cached image (for Glance or Nova)."""
        return 'rbd://%s/%s/%s/%s' % (self.cluster.fsid(), self.pool,
                                      self.name(image_id), SNAPSHOT)

    @contextlib.contextmanager
    def _translate(self, image_id: str | None,
                   doing: str) -> Iterator[None]:
        """Errors reaching the pool become CacheStoreError (no image:
        BackendError)."""
        reason = rbd_mod.unavailable_reason()
        if reason:
            raise exception.CacheStoreError(image=image_id, reason=reason) \
                if image_id else exception.BackendError(reason=reason)
        with rbd_mod.translate_rbd_errors(
                image_id, '%s in pool %s of cluster %s' % (
                    doing, self.pool, self.cluster_name),
                exception.CacheStoreError):
            yield

    @contextlib.contextmanager
    def _ioctx(self, image_id: str | None,
               doing: str) -> Iterator[Any]:
        """An I/O context on the pool, errors translated (_translate)."""
        with self._translate(image_id, doing), \
                self.cluster.ioctx(self.pool) as ioctx:
            yield ioctx

    # -- locking --

    def lock(self, image_id: str) -> contextlib.AbstractContextManager:
        return self._lock(image_id)

    @contextlib.contextmanager
    def _lock(self, image_id: str) -> Iterator[None]:
        key = (self.cluster_name, self.pool, image_id)
        with _thread_locks_guard:
            thread_lock = _thread_locks.setdefault(key, threading.Lock())
        with thread_lock, contextlib.ExitStack() as stack:
            with self._translate(image_id, 'locking'):
                # NOTE: the I/O context stays open while the lock is held.
                ioctx = stack.enter_context(self.cluster.ioctx(self.pool))
                held = locks.HeldLock(ioctx, LOCK_OBJECT_PREFIX + image_id,
                                      self._cookie(),
                                      CONF.rbd_store.lock_lease)
                self._acquire(image_id, held)
            self._held[image_id] = held
            try:
                yield
            finally:
                self._held.pop(image_id, None)
                held.release()

    def _cookie(self) -> str:
        return '%s:%d' % (self.host, os.getpid())

    @staticmethod
    def _acquire(image_id: str, held: locks.HeldLock) -> None:
        started = time.monotonic()
        delay, logged = 0.05, 0.0
        while not held.try_acquire():
            waited = time.monotonic() - started
            if waited - logged >= 30:
                logged = waited
                LOG.info('Image %(image)s: waiting %(s)ds for the lock '
                         'held by another agent', {'image': image_id,
                                                   's': waited})
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def lock_lost(self, image_id: str) -> str | None:
        """Why this agent no longer holds the image's lock, or None."""
        held = self._held.get(image_id)
        return held.lost if held is not None else None

    def _check_lock(self, image_id: str) -> None:
        lost = self.lock_lost(image_id)
        if lost:
            raise exception.CacheStoreError(image=image_id, reason=lost)

    # -- the store interface --

    def prepare(self) -> None:
        """Check the pool is reachable; a failure is logged, not fatal
        (each image then fails with the reason)."""
        try:
            with self._ioctx(None, 'opening'):
                pass
        except exception.PrecacheException as exc:
            LOG.error('RBD store %s is not usable yet: %s', self.base_dir,
                      exc)

    def is_resident(self, image: objects.ImageSpec) -> bool:
        """``<id>`` exists with its protected snapshot and, when raw, the
        expected size."""
        rbd = rbd_mod.rbd
        with self._ioctx(image.id, 'checking image %s' % image.id) as ioctx:
            try:
                with rbd.Image(ioctx, self.name(image.id),
                               read_only=True) as rbd_image:
                    snaps = {snap['name'] for snap in rbd_image.list_snaps()}
                    if SNAPSHOT not in snaps or \
                            not rbd_image.is_protected_snap(SNAPSHOT):
                        LOG.warning('RBD image %(pool)s/%(name)s has no '
                                    'protected snapshot %(snap)s; making '
                                    'it again', {'pool': self.pool,
                                                 'name': image.id,
                                                 'snap': SNAPSHOT})
                        return False
                    size = rbd_image.size()
            except rbd.ImageNotFound:
                return False
        if image.size is not None and image.disk_format in (None, 'raw') \
                and size != image.size:
            LOG.warning('RBD image %(pool)s/%(name)s has %(found)d bytes, '
                        'expected %(size)d; making it again',
                        {'pool': self.pool, 'name': image.id, 'found': size,
                         'size': image.size})
            return False
        return True

    def touch(self, image: objects.ImageSpec) -> None:
        """Stamp ``precache.touched_at`` (the file store's mtime)."""
        with self._ioctx(image.id, 'touching image %s' % image.id) as ioctx:
            with rbd_mod.rbd.Image(ioctx, self.name(image.id)) as rbd_image:
                rbd_image.metadata_set(STAMP_TOUCHED, _now())

    def install(self, image: objects.ImageSpec, temp_name: str) -> None:
        """Snapshot and protect the temporary image, rename it into place."""
        self._check_lock(image.id)
        rbd = rbd_mod.rbd
        final = self.name(image.id)
        with self._ioctx(image.id, 'installing %s' % temp_name) as ioctx:
            with rbd.Image(ioctx, temp_name) as rbd_image:
                now = _now()
                rbd_image.metadata_set(STAMP_CACHED, now)
                rbd_image.metadata_set(STAMP_TOUCHED, now)
                snaps = {snap['name'] for snap in rbd_image.list_snaps()}
                if SNAPSHOT not in snaps:
                    rbd_image.create_snap(SNAPSHOT)
                if not rbd_image.is_protected_snap(SNAPSHOT):
                    rbd_image.protect_snap(SNAPSHOT)
            self._check_lock(image.id)
            try:
                rbd.RBD().rename(ioctx, temp_name, final)
            except rbd.ImageExists:
                # NOTE: a leftover that is not resident (no protected
                # snapshot, wrong size): replace it, unless in use.
                LOG.warning('Replacing RBD image %s/%s, which is not a '
                            'complete cached image', self.pool, final)
                _remove_image(ioctx, final)
                rbd.RBD().rename(ioctx, temp_name, final)

    def remove_temporary(self, image_id: str, temp_name: str) -> None:
        """Remove a temporary image, if any, and the abandoned leftovers
        of earlier fetches of the same image (the caller holds its lock).
        Never raises: what cannot be removed now is removed later."""
        if rbd_mod.unavailable_reason():
            return
        try:
            with self._ioctx(image_id, 'removing %s' % temp_name) as ioctx:
                _remove_image(ioctx, temp_name)
                for name in rbd_mod.rbd.RBD().list(ioctx):
                    if name != temp_name and \
                            temp_image_id(name) == image_id:
                        if _remove_if_abandoned(ioctx, name):
                            LOG.warning('Removed %s, left by an '
                                        'interrupted fetch', name)
        except exception.PrecacheException as exc:
            LOG.warning('Could not remove rbd:%s/%s/%s: %s',
                        self.cluster_name, self.pool, temp_name, exc)

    def remove_stale_temp_files(self) -> list[str]:
        """Remove temporary images whose lock nobody holds (agents that
        died mid-fetch); those being built by another agent are left."""
        if rbd_mod.unavailable_reason():
            return []
        removed = []
        try:
            with self._ioctx(None, 'listing') as ioctx:
                names = rbd_mod.rbd.RBD().list(ioctx)
                for name in names:
                    image_id = temp_image_id(name)
                    if image_id is None:
                        continue
                    held = locks.HeldLock(
                        ioctx, LOCK_OBJECT_PREFIX + image_id, self._cookie(),
                        CONF.rbd_store.lock_lease)
                    if not held.try_acquire():
                        continue   # being built by another agent
                    try:
                        if _remove_if_abandoned(ioctx, name):
                            removed.append('rbd:%s/%s' % (self.pool, name))
                    finally:
                        held.release()
        except exception.PrecacheException as exc:
            LOG.warning('Could not clean up %s: %s', self.base_dir, exc)
        return removed

    def usage(self) -> tuple[int | None, int | None]:
        """(bytes stored in the pool, cached images) for heartbeats;
        cheap: one pool stat and one listing (cached images are named by
        a UUID; Nova's instance disks are ``<uuid>_disk``)."""
        if rbd_mod.unavailable_reason():
            return None, None
        try:
            with self._ioctx(None, 'measuring') as ioctx:
                used = ioctx.get_stats().get('num_bytes')
                names = rbd_mod.rbd.RBD().list(ioctx)
        except exception.PrecacheException:
            return None, None
        return used, sum(1 for name in names if _UUID.match(name))

    def describe(self) -> dict[str, object]:
        """What the agent reports about this store."""
        try:
            cluster: clusters.Cluster | None = self.cluster
        except exception.BackendError:
            cluster = None
        return {'kind': self.kind.value, 'pool': self.pool,
                'cluster': cluster.name if cluster else None,
                'fsid': cluster.known_fsid if cluster else None}


def _now() -> str:
    return objects.utcnow().isoformat()


def temp_image_id(name: str) -> str | None:
    """The image id of a temporary image name, None for other names."""
    if not name.endswith(TEMP_SUFFIX):
        return None
    stem = name[:-len(TEMP_SUFFIX)]
    return stem.rsplit('.', 1)[0] if '.' in stem else stem


def _remove_if_abandoned(ioctx: Any, name: str) -> bool:
    """Remove a leftover nobody has open; False when it is still watched
    (its client is alive, or died less than ~30 s ago)."""
    rbd = rbd_mod.rbd
    try:
        with rbd.Image(ioctx, name, read_only=True) as rbd_image:
            watchers = list(rbd_image.watchers_list())
    except rbd.ImageNotFound:
        return False
    if watchers:
        LOG.info('Leaving %s for now: still open by %s', name,
                 ', '.join(w.get('addr', '?') for w in watchers))
        return False
    _remove_image(ioctx, name)
    return True


def _remove_image(ioctx: Any, name: str) -> None:
    """Remove an image and its snapshots; absent is fine."""
    rbd = rbd_mod.rbd
    try:
        with rbd.Image(ioctx, name) as rbd_image:
            for snap in list(rbd_image.list_snaps()):
                if rbd_image.is_protected_snap(snap['name']):
                    rbd_image.unprotect_snap(snap['name'])
                rbd_image.remove_snap(snap['name'])
    except rbd.ImageNotFound:
        return
    try:
        rbd.RBD().remove(ioctx, name)
    except rbd.ImageNotFound:
        pass
