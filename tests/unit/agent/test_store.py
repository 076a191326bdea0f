"""FileStore: Nova's _base layout, residency, atomic install, Nova's lock."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time

import pytest

from precache import exception, objects
from precache.agent.stores import file as store_mod
from precache.agent.stores.file import FileStore

IMAGE_ID = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
SHA1 = hashlib.sha1(IMAGE_ID.encode()).hexdigest()  # noqa: S324


def _hold_nova_lock(lock_path: str, name: str, held, release) -> None:
    """In a child process: take the lock the way Nova does, until told."""
    from oslo_concurrency import lockutils

    with lockutils.external_lock(name, lock_file_prefix='nova-',
                                 lock_path=lock_path):
        held.set()
        release.wait(30)


@pytest.fixture
def store(tmp_path) -> FileStore:
    store = FileStore()
    store.prepare()
    return store


def _spec(size: int | None = None) -> objects.ImageSpec:
    return objects.ImageSpec(id=IMAGE_ID, size=size)


def test_layout_follows_nova(store, tmp_path):
    instances = str(tmp_path / 'instances')
    assert store_mod.cache_name(IMAGE_ID) == SHA1
    assert store.instances_path == instances
    assert store.base_dir == os.path.join(instances, '_base')
    assert store.path(IMAGE_ID) == os.path.join(instances, '_base', SHA1)
    assert store.temp_path(IMAGE_ID) == os.path.join(
        instances, '_base', SHA1 + '.precache.part')
    assert store.lock_path == os.path.join(instances, 'locks')
    assert os.path.isdir(store.base_dir) and os.path.isdir(store.lock_path)


def test_explicit_paths_and_options(tmp_path, conf):
    conf.config(group='agent', cache_subdirectory='cache')
    store = FileStore(str(tmp_path / 'other'), str(tmp_path / 'lk'))
    assert store.path('x') == os.path.join(
        str(tmp_path / 'other'), 'cache', store_mod.cache_name('x'))
    assert store.lock_path == str(tmp_path / 'lk')
    conf.config(group='agent', lock_path=str(tmp_path / 'conf-locks'))
    assert FileStore().lock_path == str(tmp_path / 'conf-locks')


def test_is_resident(store):
    assert not store.is_resident(_spec(4))
    with open(store.path(IMAGE_ID), 'wb') as out:
        out.write(b'abcd')
    assert store.is_resident(_spec(4))
    # Size unknown: presence is enough.
    assert store.is_resident(_spec(None))


def test_truncated_file_is_not_resident(store):
    with open(store.path(IMAGE_ID), 'wb') as out:
        out.write(b'ab')
    assert not store.is_resident(_spec(4))
    with open(store.path(IMAGE_ID), 'wb') as out:
        out.write(b'abcdef')
    assert not store.is_resident(_spec(4))


def test_touch_moves_mtime(store):
    path = store.path(IMAGE_ID)
    with open(path, 'wb') as out:
        out.write(b'x')
    os.utime(path, (1_000_000, 1_000_000))
    store.touch(_spec())
    assert time.time() - os.stat(path).st_mtime < 60


def test_touch_missing_file_raises_cache_store_error(store):
    with pytest.raises(exception.CacheStoreError, match='cannot touch'):
        store.touch(_spec())


def test_install_replaces_atomically(store):
    final = store.path(IMAGE_ID)
    with open(final, 'wb') as out:
        out.write(b'old')
    with open(final, 'rb') as reader:
        temp = store.temp_path(IMAGE_ID)
        with open(temp, 'wb') as out:
            out.write(b'new data')
        store.install(_spec(8), temp)
        # A reader of the old file keeps its complete old content: the
        # name was switched with rename(), never rewritten in place.
        assert reader.read() == b'old'
    assert not os.path.exists(temp)
    with open(final, 'rb') as new:
        assert new.read() == b'new data'
    assert store.is_resident(_spec(8))


def test_install_of_missing_temp_raises(store):
    with pytest.raises(exception.CacheStoreError, match='cannot install'):
        store.install(_spec(), store.temp_path(IMAGE_ID))
    assert not os.path.exists(store.path(IMAGE_ID))


def test_discard_ignores_missing(store):
    temp = store.temp_path(IMAGE_ID)
    store.discard(temp)
    open(temp, 'wb').close()
    store.discard(temp)
    assert not os.path.exists(temp)


def test_remove_stale_temp_files(store):
    stale = [store.temp_path('a'), store.temp_path('b')]
    for path in stale:
        open(path, 'wb').close()
    keep = [store.path('c'), os.path.join(store.base_dir, 'other.part')]
    for path in keep:
        open(path, 'wb').close()
    removed = store.remove_stale_temp_files()
    assert sorted(removed) == sorted(stale)
    assert not any(os.path.exists(p) for p in stale)
    assert all(os.path.exists(p) for p in keep)
    assert store.remove_stale_temp_files() == []


def test_remove_stale_temp_files_with_glob_characters_in_path(tmp_path):
    store = FileStore(str(tmp_path / 'inst[1]*?'))
    store.prepare()
    stale = store.temp_path('a')
    open(stale, 'wb').close()
    assert store.remove_stale_temp_files() == [stale]
    assert not os.path.exists(stale)


def test_describe(store):
    info = store.describe()
    assert info['kind'] == 'file'
    assert info['path'] == store.base_dir
    assert isinstance(info['free_bytes'], int) and info['free_bytes'] > 0


def test_describe_without_directory(tmp_path):
    info = FileStore(str(tmp_path / 'missing')).describe()
    assert info['free_bytes'] is None


def test_lock_file_is_novas(store):
    with store.lock(IMAGE_ID):
        assert os.path.exists(os.path.join(store.lock_path, 'nova-' + SHA1))


def _try_lock_in_thread(store: FileStore) -> threading.Event:
    acquired = threading.Event()

    def take() -> None:
        with store.lock(IMAGE_ID):
            acquired.set()

    threading.Thread(target=take, daemon=True).start()
    return acquired


def test_lock_excludes_another_process(store):
    context = multiprocessing.get_context('spawn')
    held, release = context.Event(), context.Event()
    child = context.Process(target=_hold_nova_lock,
                            args=(store.lock_path, SHA1, held, release))
    child.start()
    try:
        assert held.wait(30), 'the child never took the lock'
        acquired = _try_lock_in_thread(store)
        assert not acquired.wait(0.5), 'a lock held by Nova was ignored'
        release.set()
        assert acquired.wait(10)
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0


def test_lock_excludes_other_threads(store):
    with store.lock(IMAGE_ID):
        acquired = _try_lock_in_thread(FileStore())
        assert not acquired.wait(0.3)
    assert acquired.wait(5)


def test_lock_is_per_image(store):
    with store.lock(IMAGE_ID):
        other = threading.Event()

        def take() -> None:
            with store.lock('another-image'):
                other.set()

        threading.Thread(target=take, daemon=True).start()
        assert other.wait(5)
