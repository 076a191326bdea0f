"""Image service ``glance`` and backend ``glance-http`` against real Glance."""

from __future__ import annotations

import hashlib
import os

import pytest
from keystoneauth1 import loading as ks_loading

from precache import exception, objects
from precache.agent.backends.glance import GlanceHTTPBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore
from precache.clients import glance as glance_client
from precache.clients import keystone
from tests.openstack.conftest import random_bytes

pytestmark = pytest.mark.usefixtures('glance_conf')

MiB = 1024 * 1024


def test_validate_active_images_in_one_list_request(images, proxy):
    data = random_bytes(300_000)
    one = images.create(data, name='one')
    two = images.create(b'second image')
    hidden = images.create(b'hidden', os_hidden=True)
    proxy.requests.clear()

    specs = glance_client.GlanceImageService().validate(
        [one['id'].upper(), two['id'], hidden['id']])

    assert [s.id for s in specs] == [one['id'], two['id'], hidden['id']]
    spec = specs[0]
    assert spec.size == len(data)
    assert spec.checksum == hashlib.md5(data).hexdigest()  # noqa: S324
    assert spec.os_hash_algo == 'sha512'
    assert spec.os_hash_value == hashlib.sha512(data).hexdigest()
    assert spec.disk_format == 'raw'
    # show_multiple_locations + show_image_direct_url: one file:// URL
    assert len(spec.locations) == 1
    assert spec.locations[0].startswith('file:///')
    # one list request for all three, one GET for the hidden image that
    # lists do not show
    lines = [line for line, _ in proxy.requests]
    assert sum('/v2/images?' in line for line in lines) == 1
    assert lines[1:] == ['GET /v2/images/%s HTTP/1.1' % hidden['id']]


def test_validate_rejects_missing_and_not_active(images):
    service = glance_client.GlanceImageService()
    queued = images.create(None, name='no data yet')
    with pytest.raises(exception.ImageNotUsable, match='queued'):
        service.validate([queued['id']])
    missing = '9d8e5e1c-4a5f-4bd3-9a7e-7b7f2a3c1d00'
    with pytest.raises(exception.ImageNotFound, match=missing):
        service.validate([images.create(b'x')['id'], missing])


def test_glance_5xx_is_retried_then_names_the_service(images, proxy):
    image = images.create(b'abc')
    service = glance_client.GlanceImageService()
    proxy.fail_5xx = 2  # num_retries = 2: the third attempt succeeds
    assert service.get(image['id'])['id'] == image['id']
    proxy.fail_5xx = 3
    with pytest.raises(exception.ServiceUnavailable) as caught:
        service.get(image['id'])
    assert '[glance]' in str(caught.value)
    assert 'after 3 attempt(s)' in str(caught.value)
    assert 'HTTP 503' in str(caught.value)


def _spec(images, data: bytes, **extra) -> objects.ImageSpec:
    from precache.clients.images import spec_from_glance

    spec = spec_from_glance(images.create(data, **extra))
    # NOTE: no locations, so only glance-http can serve it here (the
    # file:// location would otherwise be readable on this host).
    return objects.ImageSpec(**{**spec.to_dict(), 'locations': ()})


def test_download_verifies_while_streaming(images, tmp_path):
    data = random_bytes(3 * MiB) + bytes(MiB)  # a zero run becomes a hole
    spec = _spec(images, data)
    dest = str(tmp_path / 'image.part')
    assert GlanceHTTPBackend().fetch(spec, dest) == len(data)
    with open(dest, 'rb') as stream:
        assert stream.read() == data
    assert os.stat(dest).st_blocks * 512 < len(data)


def test_download_resumes_after_a_broken_stream(images, proxy, tmp_path):
    data = random_bytes(2 * MiB, seed='resume')
    spec = _spec(images, data)
    proxy.cut_after, proxy.cuts_left = 700_000, 2  # two breaks
    proxy.requests.clear()
    dest = str(tmp_path / 'image.part')

    assert GlanceHTTPBackend().fetch(spec, dest) == len(data)

    with open(dest, 'rb') as stream:
        assert hashlib.sha512(stream.read()).hexdigest() == \
            spec.os_hash_value
    ranges = [rng for _, rng in proxy.requests]
    assert ranges[0] is None
    assert len(ranges) == 3
    offsets = [int(rng.split('=')[1].rstrip('-')) for rng in ranges[1:]]
    assert 0 < offsets[0] < offsets[1] < len(data)


def test_download_restarts_when_range_is_refused(images, proxy, tmp_path):
    """Glance's RBD store answers 400 to every Range: start again."""
    data = random_bytes(MiB, seed='rbd-like')
    spec = _spec(images, data)
    proxy.cut_after, proxy.cuts_left = 300_000, 1
    proxy.refuse_range = True
    proxy.requests.clear()
    dest = str(tmp_path / 'image.part')

    assert GlanceHTTPBackend().fetch(spec, dest) == len(data)

    with open(dest, 'rb') as stream:
        assert stream.read() == data
    ranges = [rng for _, rng in proxy.requests]
    assert ranges[0] is None and ranges[1].startswith('bytes=')
    assert ranges[2:] == [None]


def test_download_with_wrong_checksum_fails(images, tmp_path):
    spec = _spec(images, b'real bytes' * 1000)
    bad = objects.ImageSpec(**{**spec.to_dict(),
                               'os_hash_value': 'ab' * 64})
    with pytest.raises(exception.ImageVerificationFailed,
                       match='sha512 mismatch'):
        GlanceHTTPBackend().fetch(bad, str(tmp_path / 'image.part'))


def test_connection_dropped_every_time_gives_up(images, proxy, tmp_path):
    spec = _spec(images, random_bytes(MiB, seed='flaky'))
    proxy.cut_after, proxy.cuts_left = 0, 100  # reset before any answer
    proxy.requests.clear()
    with pytest.raises(exception.ImageFetchFailed,
                       match=r'\[glance\].*is unreachable'):
        GlanceHTTPBackend().fetch(spec, str(tmp_path / 'image.part'))
    assert len(proxy.requests) == 3  # num_retries = 2


def test_stream_broken_without_progress_gives_up(images, proxy, tmp_path,
                                                 monkeypatch):
    spec = _spec(images, random_bytes(MiB, seed='stuck'))
    backend = GlanceHTTPBackend()
    opened = []

    def broken(image, writer, offset):
        opened.append(offset)
        raise ConnectionResetError('reset by peer')

    monkeypatch.setattr(backend, '_stream', broken)
    with pytest.raises(exception.ImageFetchFailed,
                       match='stream broke 3 times without progress'):
        backend.fetch(spec, str(tmp_path / 'image.part'))
    assert opened == [0, 0, 0]


def test_image_deleted_after_validation(images, conf, tmp_path):
    """Accepted, then deleted in Glance: error (image not found)."""
    data = b'soon gone' * 1000
    spec = _spec(images, data)
    images.delete(spec.id)
    store = FileStore(str(tmp_path / 'instances'))
    cache = ImageCache('host-1', store, [GlanceHTTPBackend()])
    cache.start()

    result = cache.ensure(spec)

    assert result.state is objects.HostImageState.ERROR
    assert 'image not found' in result.reason
    assert not os.path.exists(store.path(spec.id))
    assert os.listdir(store.base_dir) == []


def test_cache_installs_glance_download(images, tmp_path):
    data = random_bytes(MiB, seed='cache')
    spec = _spec(images, data)
    store = FileStore(str(tmp_path / 'instances'))
    cache = ImageCache('host-1', store, [GlanceHTTPBackend()])
    cache.start()

    first, again = cache.ensure(spec), cache.ensure(spec)

    assert first.state is objects.HostImageState.CACHED, first.reason
    assert first.method is objects.Method.GLANCE_HTTP
    assert again.state is objects.HostImageState.EXISTING
    with open(store.path(spec.id), 'rb') as stream:
        assert stream.read() == data


def test_keystone_unreachable_is_one_clear_line(conf):
    keystone.reset()
    # NOTE: keystoneauth registers a plugin's options when it loads it;
    # a config file would have them at that point, overrides need them now.
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('password'),
                       group='glance')
    conf.config(group='glance', auth_type='password',
                auth_url='http://127.0.0.1:9/identity', username='precache',
                password='secret', project_name='service',
                user_domain_name='Default', project_domain_name='Default')
    with pytest.raises(exception.ServiceUnavailable) as caught:
        glance_client.GlanceImageService().check()
    text = str(caught.value)
    assert '\n' not in text
    assert '[glance]' in text and 'http://127.0.0.1:9/identity' in text
    assert 'unreachable' in text


def test_no_auth_and_no_endpoint_is_refused(conf):
    keystone.reset()
    conf.config(group='glance', endpoint_override=None)
    with pytest.raises(exception.Invalid, match=r'\[glance\].*'
                       'endpoint_override'):
        glance_client.GlanceImageService().check()
