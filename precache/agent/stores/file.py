"""Store ``file``: a directory of raw image files in Nova's ``_base`` layout.

The store keeps Nova's libvirt layout, ``<instances_path>/_base/
<sha1(image id)>``, and takes the same external lock Nova takes on that
file, so a boot and a precache never write it at the same time. Its sink
is ``<sha1>.precache.part`` in the same folder, written with holes,
fsynced and renamed into place; an image Nova keeps raw
(``force_raw_images``) is written as ``<sha1>.src.precache.part`` and
converted into the part file before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import logging
import os
import threading
from collections.abc import Iterator

from oslo_concurrency import lockutils

from precache import exception, objects
from precache.agent import convert, space
from precache.agent.space import no_space_reason, not_writable_reason
from precache.agent.stores import base
from precache.conf import CONF

LOG = logging.getLogger(__name__)

#: Suffix of in-flight downloads. Nova's cache manager only ages names of
#: 40 hex digits (optionally ``_sm`` / ``_<size>``), so it never reaps ours.
TEMP_SUFFIX = '.precache.part'

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def cache_name(image_id: str) -> str:
    """The file name Nova's libvirt driver uses for an image's base file."""
    return hashlib.sha1(image_id.encode()).hexdigest()  # noqa: S324


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSink(base.SparseFileSink):
    """The part file of one image (see the module doc).

    It is a path-like object too: a tool that takes a path may write it.
    """

    def __init__(self, store: FileStore, image: objects.ImageSpec) -> None:
        #: The installed file; what the backend writes when converted.
        self.temp_path = store.temp_path(image.id)
        path = self.temp_path
        if convert.needs_conversion(image):
            path = self.temp_path[:-len(TEMP_SUFFIX)] + '.src' + TEMP_SUFFIX
        super().__init__(image, path)
        self.store = store

    def __fspath__(self) -> str:
        return self.path

    def commit(self, size: int) -> int:
        """Convert to raw when the store keeps it so (whatever the
        backend: a qcow2 under Nova's raw ``_base`` name would be booted
        as raw bytes), then rename into place."""
        self.close()
        if self.path != self.temp_path:
            try:
                size = convert.to_raw(self.image, self.path, self.temp_path)
            finally:
                self.store.discard(self.path)
        self.store.install(self.image, self.temp_path)
        return size

    def discard(self) -> None:
        self.close()
        self.store.discard(self.path)
        self.store.discard(self.temp_path)


class FileStore(base.Store):
    """A directory of raw image files in Nova's ``_base`` layout."""

    kind = base.StoreKind.FILE

    def __init__(self, instances_path: str | None = None,
                 lock_path: str | None = None,
                 host: str | None = None) -> None:
        # NOTE: the all-in-one mode runs one store per simulated host in a
        # single process, so the paths can be given; else read from CONF.
        super().__init__(host)
        self._instances_path = instances_path
        self._lock_path = lock_path

    def __str__(self) -> str:
        return self.base_dir

    @property
    def instances_path(self) -> str:
        return self._instances_path or CONF.agent.instances_path

    @property
    def base_dir(self) -> str:
        return os.path.join(self.instances_path,
                            CONF.agent.cache_subdirectory)

    @property
    def lock_path(self) -> str:
        return (self._lock_path or CONF.agent.lock_path
                or os.path.join(self.instances_path, 'locks'))

    def path(self, image_id: str) -> str:
        return os.path.join(self.base_dir, cache_name(image_id))

    def temp_path(self, image_id: str) -> str:
        return self.path(image_id) + TEMP_SUFFIX

    def lock(self, image_id: str) -> contextlib.AbstractContextManager:
        """Nova's external lock on the image's base file."""
        return self._lock(cache_name(image_id), image_id)

    @contextlib.contextmanager
    def _lock(self, name: str, image_id: str | None = None
              ) -> Iterator[None]:
        # NOTE: POSIX file locks do not exclude threads of one process
        # (the all-in-one runs many agents in one), hence the thread lock
        # keyed by the lock file's full path.
        key = os.path.join(self.lock_path, CONF.agent.lock_prefix + name)
        with _thread_locks_guard:
            thread_lock = _thread_locks.setdefault(key, threading.Lock())
        with thread_lock, self._external_lock(name, image_id):
            yield

    @contextlib.contextmanager
    def _external_lock(self, name: str, image_id: str | None
                       ) -> Iterator[None]:
        lock = lockutils.external_lock(
            name, lock_file_prefix=CONF.agent.lock_prefix,
            lock_path=self.lock_path)
        try:
            lock.acquire()
        except OSError as exc:
            # NOTE: fasteners names the lock file as bytes (b'...').
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                reason = not_writable_reason(self.lock_path, exc.errno,
                                             'lock directory')
            else:
                reason = 'cannot lock in %s: %s' % (self.lock_path,
                                                   exc.strerror or exc)
            raise exception.CacheStoreError(image=image_id or name,
                                            reason=reason) from exc
        try:
            yield
        finally:
            lock.release()

    def prepare(self) -> None:
        """Create the directories; a failure is logged, not fatal (each
        image then fails with the reason, and the agent still answers)."""
        for directory in (self.base_dir, self.lock_path):
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                LOG.error('Cache store %s is not usable: cannot create '
                          '%s: %s', self.base_dir, directory,
                          exc.strerror or exc)

    def check_writable(self, image: objects.ImageSpec) -> None:
        """Fail at once, naming the directory, when nothing can be written
        there (e.g. remounted read-only after disk errors)."""
        try:
            os.makedirs(self.base_dir, exist_ok=True)
        except OSError as exc:
            raise exception.CacheStoreError(
                image=image.id, reason='cannot create cache directory %s '
                '(%s)' % (self.base_dir, exc.strerror.lower()
                          if exc.strerror else exc)) from exc
        if not os.access(self.base_dir, os.W_OK | os.X_OK):
            raise exception.CacheStoreError(
                image=image.id, reason=not_writable_reason(
                    self.base_dir, errno.EROFS if _read_only(self.base_dir)
                    else errno.EACCES))

    def check_room(self, image: objects.ImageSpec) -> None:
        """Fail at once, writing nothing, when there is less free space
        than the image's size (twice that when it is converted to raw:
        the image as Glance holds it and the raw file exist together).
        A raw image of holes may need less; a qcow2's raw file may need
        more (its virtual size, unknown until fetched)."""
        if image.size is not None:
            copies = 2 if convert.needs_conversion(image) else 1
            self.check_space(image, image.size * copies)

    def check_space(self, image: objects.ImageSpec, needed: int) -> None:
        """Fail at once, before anything is written, when ``needed`` bytes
        are not free in the cache directory."""
        free = self.free_bytes()
        if free is not None and needed > free:
            raise exception.CacheStoreError(
                image=image.id,
                reason=no_space_reason(self.base_dir, needed, free))

    def is_resident(self, image: objects.ImageSpec) -> bool:
        """Present with the expected size (a truncated file is not).

        An image kept converted to raw (``force_raw_images``) has its
        virtual size, which Glance does not give: only presence counts.
        """
        path = self.path(image.id)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return False
        if image.size is not None and size != image.size and \
                not convert.needs_conversion(image):
            LOG.warning('Cached file %(path)s of image %(image)s has '
                        '%(found)d bytes, expected %(size)d; fetching it '
                        'again', {'path': path, 'image': image.id,
                                  'found': size, 'size': image.size})
            return False
        return True

    def touch(self, image: objects.ImageSpec) -> None:
        """Restart the cache expiry clock of a resident image (mtime)."""
        try:
            os.utime(self.path(image.id))
        except OSError as exc:
            raise exception.CacheStoreError(
                image=image.id, reason='cannot touch: %s' % exc) from exc

    def open_sink(self, image: objects.ImageSpec) -> FileSink:
        self.discard(self.temp_path(image.id))
        return FileSink(self, image)

    def install(self, image: objects.ImageSpec, temp_path: str) -> None:
        """Atomically make a verified, fsynced temp file the cached image."""
        try:
            os.replace(temp_path, self.path(image.id))
            _fsync_dir(self.base_dir)
        except OSError as exc:
            raise exception.CacheStoreError(
                image=image.id, reason='cannot install: %s' % exc) from exc

    def discard(self, temp_path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)

    def remove_stale_temp_files(self) -> list[str]:
        """Remove downloads left by an agent that died mid-fetch.

        Each is removed under its image's lock, so a fetch that is still
        running (another process on this host) is never disturbed.
        """
        removed = []
        for temp in glob.glob(os.path.join(glob.escape(self.base_dir),
                                           '*' + TEMP_SUFFIX)):
            # NOTE: <sha1>.precache.part, or <sha1>.<what>.precache.part
            # for a helper file of the same fetch (e.g. before conversion).
            name = os.path.basename(temp).split('.', 1)[0]
            try:
                with self._lock(name):
                    if os.path.exists(temp):
                        self.discard(temp)
                        removed.append(temp)
            except (OSError, exception.CacheStoreError) as exc:
                LOG.error('Cannot remove %s, left by an interrupted '
                          'fetch: %s', temp, exc)
        return removed

    def free_bytes(self) -> int | None:
        return space.free_bytes(self.base_dir)

    def usage(self) -> tuple[int | None, int | None]:
        """(bytes allocated, files) of the cache directory."""
        total = count = 0
        try:
            with os.scandir(self.base_dir) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat().st_blocks * 512
                        count += 1
        except OSError:
            return None, None
        return total, count

    def describe(self) -> dict[str, object]:
        """What the agent reports about this store."""
        return {'kind': self.kind.value, 'path': self.base_dir,
                'free_bytes': self.free_bytes()}
