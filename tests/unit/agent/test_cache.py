"""ImageCache.ensure / ensure_all over a real FileStore and real files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
import uuid

import pytest

from precache import exception, objects
from precache.agent.backends.base import Backend
from precache.agent.backends.file import FileBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore

State = objects.HostImageState


class RecordingBackend(Backend):
    """Writes ``size`` bytes of 'x'; records how many fetches overlap."""

    name = 'recording'
    method = objects.Method.GLANCE_HTTP

    def __init__(self, barrier: threading.Barrier | None = None,
                 delay: float = 0.0) -> None:
        self.barrier = barrier
        self.delay = delay
        self.fetched: list[str] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def unsupported_reason(self, image):
        return None

    def fetch(self, image, dest_path):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.fetched.append(image.id)
        try:
            if self.barrier is not None:
                self.barrier.wait(10)
            time.sleep(self.delay)
            with open(dest_path, 'wb') as out:
                out.write(b'x' * image.size)
            return image.size
        finally:
            with self._lock:
                self.active -= 1


class FailingBackend(Backend):
    """Leaves a partial temp file behind, then fails."""

    name = 'failing'
    method = objects.Method.RBD_CLONE

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error or exception.ImageFetchFailed(
            image='?', reason='source is gone')
        self.calls = 0

    def unsupported_reason(self, image):
        return None

    def fetch(self, image, dest_path):
        self.calls += 1
        with open(dest_path, 'wb') as out:
            out.write(b'partial')
        raise self.error


class NeverBackend(Backend):
    name = 'never'
    method = objects.Method.RBD_EXPORT

    def unsupported_reason(self, image):
        return 'not an rbd image'

    def fetch(self, image, dest_path):  # pragma: no cover - never called
        raise AssertionError('fetch of an unsupported image')


@pytest.fixture
def store() -> FileStore:
    return FileStore()


def _cache(store: FileStore, *backends: Backend) -> ImageCache:
    cache = ImageCache('host-1', store, list(backends))
    cache.start()
    return cache


def _image(tmp_path, data: bytes, **kwargs) -> objects.ImageSpec:
    image_id = kwargs.pop('id', str(uuid.uuid4()))
    source = tmp_path / ('%s.raw' % image_id)
    source.write_bytes(data)
    fields = {'size': len(data), 'os_hash_algo': 'sha512',
              'os_hash_value': hashlib.sha512(data).hexdigest(),
              'locations': ('file://%s' % source,)}
    fields.update(kwargs)
    return objects.ImageSpec(id=image_id, **fields)


def _temp_files(store: FileStore) -> list[str]:
    return [n for n in os.listdir(store.base_dir)
            if n.endswith('.precache.part')]


def test_cached_then_existing(tmp_path, store):
    data = os.urandom(150 * 1024)
    image = _image(tmp_path, data)
    cache = _cache(store, FileBackend())

    first = cache.ensure(image)
    assert first.state is State.CACHED
    assert first.method is objects.Method.FILE
    assert first.bytes == len(data)
    assert first.reason is None
    assert first.host == 'host-1' and first.image_id == image.id
    assert first.started_at <= first.finished_at
    with open(store.path(image.id), 'rb') as cached:
        assert cached.read() == data

    path = store.path(image.id)
    os.utime(path, (1_000_000, 1_000_000))
    # The source is gone: a second ensure must not need it.
    os.unlink(image.locations[0][len('file://'):])
    second = cache.ensure(image)
    assert second.state is State.EXISTING
    assert second.method is None and second.bytes == 0
    assert time.time() - os.stat(path).st_mtime < 60
    assert _temp_files(store) == []


def test_truncated_cached_file_is_fetched_again(tmp_path, store):
    data = os.urandom(10 * 1024)
    image = _image(tmp_path, data)
    cache = _cache(store, FileBackend())
    with open(store.path(image.id), 'wb') as out:
        out.write(data[:100])
    result = cache.ensure(image)
    assert result.state is State.CACHED
    with open(store.path(image.id), 'rb') as cached:
        assert cached.read() == data


def test_hash_mismatch_is_an_error_and_leaves_nothing(tmp_path, store):
    data = os.urandom(64 * 1024)
    image = _image(tmp_path, data,
                   os_hash_value=hashlib.sha512(b'other').hexdigest())
    cache = _cache(store, FileBackend())
    result = cache.ensure(image)
    assert result.state is State.ERROR
    assert 'file:' in result.reason
    assert 'sha512 mismatch' in result.reason
    assert not os.path.exists(store.path(image.id))
    assert _temp_files(store) == []


def test_unsupported_when_no_backend_can_serve(store):
    image = objects.ImageSpec(id=str(uuid.uuid4()), size=3,
                              locations=('rbd://fsid/images/x/snap',))
    cache = _cache(store, NeverBackend(), FileBackend())
    result = cache.ensure(image)
    assert result.state is State.UNSUPPORTED
    assert result.reason == ('never: not an rbd image; '
                             'file: no readable file location')
    assert not os.path.exists(store.path(image.id))


def test_unsupported_without_backends(store):
    result = _cache(store).ensure(objects.ImageSpec(id='x'))
    assert result.state is State.UNSUPPORTED
    assert result.reason == 'no backend enabled'


def test_failing_backend_falls_back_to_the_next(tmp_path, store):
    data = os.urandom(20 * 1024)
    image = _image(tmp_path, data)
    failing = FailingBackend()
    cache = _cache(store, NeverBackend(), failing, FileBackend())
    result = cache.ensure(image)
    assert failing.calls == 1
    assert result.state is State.CACHED
    assert result.method is objects.Method.FILE
    with open(store.path(image.id), 'rb') as cached:
        assert cached.read() == data
    assert _temp_files(store) == []


def test_every_backend_failing_is_an_error_with_all_reasons(tmp_path,
                                                            store):
    image = _image(tmp_path, b'abc', checksum=None,
                   os_hash_value=hashlib.sha512(b'abd').hexdigest())
    cache = _cache(store, FailingBackend(), FileBackend())
    result = cache.ensure(image)
    assert result.state is State.ERROR
    assert result.reason.startswith('failing: Fetching image ? failed: '
                                    'source is gone; file: ')
    assert 'sha512 mismatch' in result.reason
    assert _temp_files(store) == []
    assert not os.path.exists(store.path(image.id))


def test_unexpected_error_is_reported_not_raised(tmp_path, store):
    image = objects.ImageSpec(id=str(uuid.uuid4()), size=7)
    cache = _cache(store, FailingBackend(RuntimeError('bug')))
    result = cache.ensure(image)
    assert result.state is State.ERROR
    assert result.reason == 'unexpected error: bug'
    assert _temp_files(store) == []


def test_start_prepares_and_removes_stale_temp_files(store):
    os.makedirs(store.base_dir)
    stale = store.temp_path('abc')
    open(stale, 'wb').close()
    ImageCache('h', store, []).start()
    assert not os.path.exists(stale)
    assert os.path.isdir(store.lock_path)


def test_same_image_from_two_threads_is_fetched_once(store):
    backend = RecordingBackend(delay=0.2)
    cache = _cache(store, backend)
    image = objects.ImageSpec(id=str(uuid.uuid4()), size=10)
    results: list[objects.HostImageResult] = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.ensure(image))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(r.state.value for r in results) == ['cached', 'existing']
    assert backend.fetched == [image.id]


def test_ensure_all_keeps_order_and_respects_the_limit(store, conf):
    conf.config(group='agent', max_concurrent_images=2)
    backend = RecordingBackend(barrier=threading.Barrier(2), delay=0.02)
    cache = _cache(store, backend)
    images = [objects.ImageSpec(id=str(uuid.uuid4()), size=i + 1)
              for i in range(6)]
    results = cache.ensure_all(images)
    assert [r.image_id for r in results] == [i.id for i in images]
    assert [r.bytes for r in results] == [1, 2, 3, 4, 5, 6]
    assert all(r.state is State.CACHED for r in results)
    # The barrier proves two ran at once; never more than two.
    assert backend.max_active == 2


def test_ensure_all_one_at_a_time(store, conf):
    conf.config(group='agent', max_concurrent_images=1)
    backend = RecordingBackend(delay=0.01)
    cache = _cache(store, backend)
    images = [objects.ImageSpec(id=str(uuid.uuid4()), size=1)
              for _ in range(4)]
    results = cache.ensure_all(images)
    assert [r.state for r in results] == [State.CACHED] * 4
    assert backend.max_active == 1
    assert backend.fetched == [i.id for i in images]


def test_ensure_all_mixes_outcomes(tmp_path, store):
    good = _image(tmp_path, os.urandom(1000))
    bad = _image(tmp_path, b'abc', os_hash_value='0' * 128)
    nowhere = objects.ImageSpec(id=str(uuid.uuid4()), size=1)
    results = _cache(store, FileBackend()).ensure_all([good, bad, nowhere])
    assert [r.state for r in results] == [State.CACHED, State.ERROR,
                                          State.UNSUPPORTED]


def test_ensure_all_of_nothing(store):
    assert _cache(store, FileBackend()).ensure_all([]) == []


def _qcow2(tmp_path, raw: bytes) -> bytes:
    source = tmp_path / 'disk.raw'
    source.write_bytes(raw)
    target = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    str(source), str(target)], check=True)
    return target.read_bytes()


def test_qcow2_from_any_backend_is_verified_then_kept_raw(tmp_path, store):
    """Nova boots a ``_base`` file as raw when force_raw_images is set."""
    raw = os.urandom(256 * 1024) + bytes(768 * 1024) + os.urandom(4096)
    image = _image(tmp_path, _qcow2(tmp_path, raw), disk_format='qcow2')
    cache = _cache(store, FileBackend())

    result = cache.ensure(image)
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.FILE
    with open(store.path(image.id), 'rb') as cached:
        assert cached.read() == raw
    assert _temp_files(store) == []
    # The raw file has the virtual size, not Glance's: still resident.
    assert cache.ensure(image).state is State.EXISTING


def test_qcow2_kept_as_is_without_force_raw_images(tmp_path, store, conf):
    conf.config(group='agent', force_raw_images=False)
    qcow2 = _qcow2(tmp_path, os.urandom(64 * 1024))
    image = _image(tmp_path, qcow2, disk_format='qcow2')
    assert _cache(store, FileBackend()).ensure(image).state is State.CACHED
    with open(store.path(image.id), 'rb') as cached:
        assert cached.read() == qcow2


def test_bad_bytes_are_refused_before_any_conversion(tmp_path, store):
    qcow2 = _qcow2(tmp_path, os.urandom(64 * 1024))
    image = _image(tmp_path, qcow2, disk_format='qcow2',
                   os_hash_value=hashlib.sha512(b'other').hexdigest())
    result = _cache(store, FileBackend()).ensure(image)
    assert result.state is State.ERROR
    assert 'mismatch' in result.reason
    assert not os.path.exists(store.path(image.id))
    assert _temp_files(store) == []
