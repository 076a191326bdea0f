"""Backend loading and the file backend."""

from __future__ import annotations

import hashlib
import os

import pytest

from precache import exception, objects
from precache.agent import backends
from precache.agent.backends import file as file_backend
from precache.agent.backends.base import Backend


def _spec(data: bytes, *locations: str) -> objects.ImageSpec:
    return objects.ImageSpec(
        id='img', size=len(data), os_hash_algo='sha512',
        os_hash_value=hashlib.sha512(data).hexdigest(),
        locations=locations)


def test_load_default_is_file():
    loaded = backends.load()
    assert [type(b) for b in loaded] == [file_backend.FileBackend]
    assert loaded[0].name == 'file'
    assert loaded[0].method is objects.Method.FILE
    assert isinstance(loaded[0], Backend)


def test_load_follows_enabled_backends(conf):
    conf.config(group='agent', enabled_backends=['file', 'file'])
    assert [b.name for b in backends.load()] == ['file', 'file']
    assert backends.load([]) == []


def test_load_unknown_backend_fails():
    with pytest.raises(exception.Invalid, match='unknown backend.*rbd'):
        backends.load(['file', 'rbd'])


@pytest.mark.parametrize('location,path', [
    ('/srv/images/a.raw', '/srv/images/a.raw'),
    ('file:///srv/images/a.raw', '/srv/images/a.raw'),
    ('file://localhost/srv/a%20b.raw', '/srv/a b.raw'),
    ('file://otherhost/srv/a.raw', None),
    ('rbd://fsid/images/img/snap', None),
    ('https://glance/v2/images/img/file', None),
    ('relative/a.raw', None),
])
def test_local_path(location, path):
    assert file_backend.local_path(location) == path


def test_serves_first_readable_location(tmp_path):
    data = os.urandom(70 * 1024)
    source = tmp_path / 'src.raw'
    source.write_bytes(data)
    image = _spec(data, 'rbd://fsid/pool/img/snap',
                  str(tmp_path / 'missing.raw'), 'file://' + str(source))
    backend = file_backend.FileBackend()
    assert backend.unsupported_reason(image) is None
    dest = tmp_path / 'dest'
    assert backend.fetch(image, str(dest)) == len(data)
    assert dest.read_bytes() == data


def test_small_chunks(tmp_path, conf):
    conf.config(group='agent', chunk_size=64)
    data = os.urandom(200 * 1024 + 7)
    source = tmp_path / 'src.raw'
    source.write_bytes(data)
    dest = tmp_path / 'dest'
    assert file_backend.FileBackend().fetch(
        _spec(data, str(source)), str(dest)) == len(data)
    assert dest.read_bytes() == data


def test_unsupported_without_file_location(tmp_path):
    image = _spec(b'x', 'rbd://a/b/c/d', str(tmp_path / 'missing'),
                  str(tmp_path))
    backend = file_backend.FileBackend()
    assert backend.unsupported_reason(image) == 'no readable file location'
    with pytest.raises(exception.ImageFetchFailed,
                       match='no readable file location'):
        backend.fetch(image, str(tmp_path / 'dest'))


def test_verification_failure_propagates(tmp_path):
    data = os.urandom(1024)
    source = tmp_path / 'src.raw'
    source.write_bytes(data + b'tampered')
    with pytest.raises(exception.ImageVerificationFailed):
        file_backend.FileBackend().fetch(_spec(data, str(source)),
                                         str(tmp_path / 'dest'))


def test_directory_is_not_a_file_location(tmp_path):
    source = tmp_path / 'dir.raw'
    source.mkdir()
    image = _spec(b'abc', str(source))
    backend = file_backend.FileBackend()
    assert backend.unsupported_reason(image) == 'no readable file location'
    with pytest.raises(exception.ImageFetchFailed):
        backend.fetch(image, str(tmp_path / 'dest'))
