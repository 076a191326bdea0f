"""A full or read-only cache, on a real small file system (tmpfs).

The messages name the cache directory, what was needed and what was free,
never the source; nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from precache import exception, objects
from precache.agent.backends.file import FileBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore

State = objects.HostImageState
MiB = 1024 * 1024


@pytest.fixture
def small_fs(tmp_path, conf) -> Iterator[str]:
    """A 16 MiB tmpfs as the instances path, unmounted afterwards."""
    mount_point = tmp_path / 'instances'
    mount_point.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=16m', 'tmpfs',
                    str(mount_point)], check=True)
    conf.config(group='agent', instances_path=str(mount_point))
    try:
        yield str(mount_point)
    finally:
        subprocess.run(['umount', '-l', str(mount_point)], check=True)


def _image(tmp_path, data: bytes, **kwargs) -> objects.ImageSpec:
    image_id = str(uuid.uuid4())
    source = tmp_path / ('%s.raw' % image_id)
    source.write_bytes(data)
    fields = {'size': len(data), 'os_hash_algo': 'sha512',
              'os_hash_value': hashlib.sha512(data).hexdigest(),
              'locations': ('file://%s' % source,)}
    fields.update(kwargs)
    return objects.ImageSpec(id=image_id, **fields)


def _cache(*backends) -> tuple[ImageCache, FileStore]:
    store = FileStore()
    cache = ImageCache('host-1', store, list(backends) or [FileBackend()])
    cache.start()
    return cache, store


def _free(path: str) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class FillingBackend(FileBackend):
    """Another writer fills the disk between the check and the fetch."""

    def fetch(self, image, dest_path):
        with open(os.path.join(os.path.dirname(dest_path), 'filler'),
                  'wb') as out:
            out.write(b'f' * (_free(os.path.dirname(dest_path))
                              - image.size // 2))
        return super().fetch(image, dest_path)


def test_image_bigger_than_the_disk_fails_before_writing(tmp_path,
                                                         small_fs):
    image = _image(tmp_path, os.urandom(24 * MiB))
    cache, store = _cache()
    free = _free(store.base_dir)

    result = cache.ensure(image)

    assert result.state is State.ERROR
    assert result.reason == (
        'Cache store error for image %s: not enough space in %s: need '
        '24.0 MiB (25165824 bytes), free %.1f MiB (%d bytes)'
        % (image.id, store.base_dir, free / MiB, free))
    assert os.listdir(store.base_dir) == []
    assert _free(store.base_dir) == free


def test_qcow2_needs_twice_its_size(tmp_path, small_fs):
    data = os.urandom(10 * MiB)
    image = _image(tmp_path, data, disk_format='qcow2')
    result = _cache()[0].ensure(image)
    assert result.state is State.ERROR
    assert 'need 20.0 MiB (20971520 bytes), free' in result.reason


def test_disk_filled_during_the_fetch_names_the_cache(tmp_path, small_fs):
    image = _image(tmp_path, os.urandom(8 * MiB))
    cache, store = _cache(FillingBackend())

    result = cache.ensure(image)

    assert result.state is State.ERROR
    assert result.reason.startswith(
        'Cache store error for image %s: not enough space in %s: need '
        '8.0 MiB (8388608 bytes), free ' % (image.id, store.base_dir))
    assert 'reading' not in result.reason
    assert image.locations[0] not in result.reason
    assert sorted(os.listdir(store.base_dir)) == ['filler']


def test_unknown_size_filling_the_disk(tmp_path, small_fs):
    image = _image(tmp_path, os.urandom(20 * MiB), size=None)
    cache, store = _cache()
    result = cache.ensure(image)
    assert result.state is State.ERROR
    assert result.reason.startswith(
        'Cache store error for image %s: not enough space in %s: need '
        'more than the ' % (image.id, store.base_dir))
    assert os.listdir(store.base_dir) == []


def test_read_only_cache(tmp_path, small_fs):
    image = _image(tmp_path, os.urandom(MiB))
    cache, store = _cache()
    subprocess.run(['mount', '-o', 'remount,ro', small_fs], check=True)

    result = cache.ensure(image)

    assert result.state is State.ERROR
    assert result.reason == (
        'Cache store error for image %s: cache directory %s is not '
        'writable (read-only file system)' % (image.id, store.base_dir))


def test_read_only_lock_directory(tmp_path, small_fs, conf):
    """Nova's lock_path elsewhere, and read-only: named, as a str."""
    locks = tmp_path / 'locks'
    locks.mkdir()
    subprocess.run(['mount', '--bind', str(locks), str(locks)], check=True)
    try:
        subprocess.run(['mount', '-o', 'remount,bind,ro', str(locks)],
                       check=True)
        conf.config(group='agent', lock_path=str(locks))
        image = _image(tmp_path, os.urandom(MiB))
        result = _cache()[0].ensure(image)
    finally:
        subprocess.run(['umount', '-l', str(locks)], check=True)
    assert result.state is State.ERROR
    assert result.reason == (
        'Cache store error for image %s: lock directory %s is not '
        'writable (read-only file system)' % (image.id, locks))


def test_agent_starts_on_a_read_only_cache(tmp_path, small_fs):
    subprocess.run(['mount', '-o', 'remount,ro', small_fs], check=True)
    image = _image(tmp_path, os.urandom(MiB))
    cache, store = _cache()
    result = cache.ensure(image)
    assert result.state is State.ERROR
    assert result.reason.endswith(
        'cannot create cache directory %s (read-only file system)'
        % store.base_dir)


def test_rbd_export_sink_on_a_full_disk_names_the_cache(small_fs):
    """rbd-export's writes into the file store fail the same way."""
    store = FileStore()
    store.prepare()
    image = objects.ImageSpec(id=str(uuid.uuid4()), size=32 * MiB)
    sink = store.open_sink(image)
    sink.begin(image.size)
    try:
        with pytest.raises(exception.CacheStoreError) as caught:
            for offset in range(0, 32 * MiB, 4 * MiB):
                sink.write(offset, os.urandom(4 * MiB))
    finally:
        sink.close()
    assert str(caught.value).startswith(
        'Cache store error for image %s: not enough space in %s: need '
        '32.0 MiB (33554432 bytes), free ' % (image.id, store.base_dir))


def test_raw_conversion_filling_the_disk_names_the_cache(tmp_path,
                                                         small_fs):
    """A compressed qcow2 passes the check; its raw file does not fit."""
    raw = tmp_path / 'disk.raw'
    raw.write_bytes(b'\1' * (24 * MiB))
    qcow2 = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2',
                    str(raw), str(qcow2)], check=True)
    image = _image(tmp_path, qcow2.read_bytes(), disk_format='qcow2')
    assert image.size < 4 * MiB
    cache, store = _cache()

    result = cache.ensure(image)

    assert result.state is State.ERROR
    assert result.reason.startswith(
        'Cache store error for image %s: not enough space in %s: need '
        '24.0 MiB (25165824 bytes), free ' % (image.id, store.base_dir))
    assert os.listdir(store.base_dir) == []
