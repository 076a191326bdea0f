"""Checks every cache store must pass, through its contract only.

The file store runs them in tests/unit/agent/test_store_contract.py, the
rbd store on a real cluster in tests/ceph/test_store_contract.py. Each
check takes the store (prepared) and ``read(image_id)``: the sha512 of
the installed image's bytes, read back the store's own way.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable

import pytest

from precache import exception, objects
from precache.agent.stores.base import Sink, Store

MiB = 1024 * 1024

Read = Callable[[str], str]


def image_of(data: bytes, **fields) -> objects.ImageSpec:
    return objects.ImageSpec(
        id=str(uuid.uuid4()), size=len(data), disk_format='raw',
        os_hash_algo='sha512', os_hash_value=hashlib.sha512(data).hexdigest(),
        **fields)


def sparse_data() -> bytes:
    """2 MiB of data with a 1 MiB hole in the middle."""
    return os.urandom(512 * 1024) + bytes(MiB) + os.urandom(512 * 1024)


def _write(sink: Sink, data: bytes, step: int = 256 * 1024) -> int:
    sink.begin(len(data))
    written = 0
    for offset in range(0, len(data), step):
        written += sink.write(offset, data[offset:offset + step])
    sink.finish(len(data))
    return written


def check_describes_itself(store: Store, read: Read) -> None:
    info = store.describe()
    assert info['kind'] == store.kind.value
    assert str(store)
    assert store.usage() != (None, None)


def check_sink_commits_atomically(store: Store, read: Read) -> None:
    data = sparse_data()
    image = image_of(data)
    with store.lock(image.id):
        assert not store.is_resident(image)
        sink = store.open_sink(image)
        assert sink.image is image and str(sink)
        written = _write(sink, data)
        # NOTE: holes are not written.
        assert written == len(data) - MiB
        assert sink.interrupted() is None
        assert not store.is_resident(image)
        assert sink.commit(len(data)) == len(data)
        assert store.is_resident(image)
        store.touch(image)
    assert read(image.id) == image.os_hash_value
    assert store.remove_stale_temp_files() == []


def check_begin_starts_over(store: Store, read: Read) -> None:
    data = os.urandom(MiB)
    image = image_of(data)
    with store.lock(image.id):
        sink = store.open_sink(image)
        _write(sink, b'\xff' * MiB)
        # NOTE: a restarted download: zeros must not show the old bytes.
        _write(sink, bytes(MiB))
        _write(sink, data)
        sink.commit(len(data))
    assert read(image.id) == image.os_hash_value


def check_discard_leaves_nothing(store: Store, read: Read) -> None:
    data = os.urandom(MiB)
    image = image_of(data)
    before = store.usage()[1]
    with store.lock(image.id):
        sink = store.open_sink(image)
        _write(sink, data)
        sink.discard()
        sink.discard()   # never raises, even twice
        assert not store.is_resident(image)
    assert store.usage()[1] == before
    assert store.remove_stale_temp_files() == []


def check_answers_capability_questions(store: Store, read: Read) -> None:
    qcow2 = objects.ImageSpec(id=str(uuid.uuid4()), size=1,
                              disk_format='qcow2')
    if store.kind == 'rbd':
        assert store.unsupported_reason(qcow2) == (
            'disk_format is qcow2: the rbd store holds raw images only')
    else:
        assert store.unsupported_reason(qcow2) is None
        assert store.clone_sources([]) == ([], 'needs the rbd store')
    assert store.unsupported_reason(image_of(b'x')) is None


def check_room_and_writable_checks_pass(store: Store, read: Read) -> None:
    image = image_of(os.urandom(1024))
    store.check_writable(image)
    store.check_room(image)
    free = store.free_bytes()
    assert free is None or free > 0


def refuses_a_clone(store: Store) -> None:
    """A store that cannot clone says so (the file store; the rbd store's
    clones are checked in tests/ceph/test_store_contract.py)."""
    image = image_of(b'x')
    with store.lock(image.id):
        sink = store.open_sink(image)
        with pytest.raises(exception.CacheStoreError, match='cannot hold'):
            sink.clone_from(None)  # type: ignore[arg-type]
        sink.discard()


CHECKS = [check_describes_itself, check_sink_commits_atomically,
          check_begin_starts_over, check_discard_leaves_nothing,
          check_answers_capability_questions,
          check_room_and_writable_checks_pass]
