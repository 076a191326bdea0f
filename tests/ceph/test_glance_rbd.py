"""Real Glance with its rbd store on the test cluster, and agents fed by it.

Glance 33 (tests/openstack/glance_server.py, multi-store ``fs`` + ``ceph``,
``ceph`` the default) stores an upload the way production Glance does:
image ``<id>`` in pool ``images``, protected snapshot ``snap``, location
``rbd://<fsid>/images/<id>/snap``. precache's Glance image service
validates it and the agents cache it from there: ``rbd-export`` into the
file store, ``rbd-clone`` into the rbd store, and ``glance-http`` when
the location names a cluster the agent does not know — with the holes
rbd-export keeps, and, this store refusing every Range, starting over
(a bounded number of times) when a stream breaks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from precache import objects
from precache.agent.backends.glance import GlanceHTTPBackend
from precache.agent.backends.rbd import RbdCloneBackend, RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore
from precache.agent.stores.rbd import RbdStore
from precache.clients import glance as glance_client
from precache.clients import keystone
from tests.ceph.helpers import CephCluster, MiB, allocated_bytes, sha512_file
from tests.openstack import glance_server
from tests.openstack.proxy import FlakyProxy

State = objects.HostImageState


@pytest.fixture(scope='module')
def glance_rbd(tmp_path_factory: pytest.TempPathFactory, ceph: CephCluster
               ) -> Iterator[glance_server.GlanceServer]:
    with glance_server.running(str(tmp_path_factory.mktemp('glance-rbd')),
                               ceph_conf=ceph.conf) as server:
        yield server


@pytest.fixture(scope='module')
def uploaded(glance_rbd: glance_server.GlanceServer
             ) -> tuple[dict[str, Any], bytes]:
    """An image uploaded through Glance's API: data, a zero run, data."""
    data = glance_server.random_bytes(8 * MiB, seed='rbd-a') + \
        bytes(8 * MiB) + glance_server.random_bytes(4 * MiB, seed='rbd-b')
    image = glance_server.Images(glance_rbd.url).create(data, name='rbd')
    return image, data


@pytest.fixture
def glance_rbd_conf(conf: Any, glance_rbd: glance_server.GlanceServer
                    ) -> Iterator[Any]:
    """[glance] at the rbd Glance (no Keystone)."""
    keystone.reset()
    conf.config(group='glance', endpoint_override=glance_rbd.url,
                retry_delay=0.01, num_retries=2)
    yield conf
    keystone.reset()


def _validated(image: dict[str, Any]) -> objects.ImageSpec:
    [spec] = glance_client.GlanceImageService().validate([image['id']])
    return spec


def _cache(store: Any) -> ImageCache:
    """An agent's cache with every backend, in the default order."""
    cache = ImageCache('glance-rbd-host', store, [
        RbdCloneBackend(), RbdExportBackend(), GlanceHTTPBackend()])
    cache.start()
    return cache


def test_upload_lands_in_pool_images_as_a_protected_snapshot(ceph,
                                                             uploaded):
    image, data = uploaded
    location = 'rbd://%s/images/%s/snap' % (ceph.fsid, image['id'])
    assert image['status'] == 'active'
    assert image['stores'] == 'ceph'
    assert image['direct_url'] == location
    assert [loc['url'] for loc in image['locations']] == [location]
    snaps = json.loads(ceph.cli('rbd', 'snap', 'ls', '--format', 'json',
                                'images/%s' % image['id']))
    assert [(s['name'], s['protected']) for s in snaps] == [('snap',
                                                             'true')]
    assert ceph.read_image('images', image['id'], 'snap')[0] == \
        hashlib.sha512(data).hexdigest()


def test_validation_returns_the_rbd_location(glance_rbd_conf, ceph,
                                             uploaded):
    image, data = uploaded
    spec = _validated(image)
    assert spec.locations == ('rbd://%s/images/%s/snap'
                              % (ceph.fsid, image['id']),)
    assert spec.size == len(data)
    assert spec.os_hash_algo == 'sha512'
    assert spec.os_hash_value == hashlib.sha512(data).hexdigest()


def test_agent_on_the_cluster_exports_into_the_file_store(
        ceph_conf_main, glance_rbd_conf, uploaded):
    image, data = uploaded
    cache = _cache(FileStore())
    result = cache.ensure(_validated(image))
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.RBD_EXPORT
    assert result.bytes == len(data)
    path = cache.store.path(image['id'])
    assert sha512_file(path) == hashlib.sha512(data).hexdigest()
    assert allocated_bytes(path) <= 12 * MiB + MiB  # the zero run: a hole


def test_agent_on_the_cluster_clones_into_the_rbd_store(
        ceph_conf_main, glance_rbd_conf, ceph, uploaded):
    image, data = uploaded
    cache = _cache(RbdStore(host='glance-rbd-host'))
    try:
        result = cache.ensure(_validated(image))
        assert result.state is State.CACHED, result.reason
        assert result.method is objects.Method.RBD_CLONE
        parent = ceph.image_info('vms', image['id'])['parent']
        assert (parent['pool'], parent['image'], parent['snapshot']) == (
            'images', image['id'], 'snap')
        assert ceph.read_image('vms', image['id'])[0] == \
            hashlib.sha512(data).hexdigest()
        instances = ceph_conf_main.conf.agent.instances_path
        assert not os.path.exists(os.path.join(instances, '_base'))
    finally:
        ceph.delete_image('vms', image['id'])


def test_location_on_an_unknown_cluster_falls_back_to_glance_http(
        conf, ceph_other, glance_rbd_conf, uploaded):
    """The agent knows only another cluster (another fsid): Glance
    streams the image (its rbd store refuses Range; nothing to resume
    here)."""
    conf.config(group='ceph', conf_file=ceph_other.conf, op_timeout=30)
    image, data = uploaded
    cache = _cache(FileStore())
    result = cache.ensure(_validated(image))
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.GLANCE_HTTP
    assert result.bytes == len(data)
    assert sha512_file(cache.store.path(image['id'])) == \
        hashlib.sha512(data).hexdigest()


def test_glance_http_keeps_the_holes_rbd_export_keeps(
        ceph_conf_main, glance_rbd_conf, uploaded, tmp_path):
    image, data = uploaded
    spec = _validated(image)
    exported = ImageCache('export-host', FileStore(str(tmp_path / 'a')),
                          [RbdExportBackend()])
    downloaded = ImageCache('http-host', FileStore(str(tmp_path / 'b')),
                            [GlanceHTTPBackend()])
    for cache, method in ((exported, objects.Method.RBD_EXPORT),
                          (downloaded, objects.Method.GLANCE_HTTP)):
        cache.start()
        result = cache.ensure(spec)
        assert result.state is State.CACHED, result.reason
        assert result.method is method
    paths = [cache.store.path(image['id']) for cache in (exported,
                                                          downloaded)]
    assert sha512_file(paths[1]) == hashlib.sha512(data).hexdigest()
    # the 8 MiB zero run is a hole in both, found per 64 KiB block (the
    # file system may add a block of its own to either)
    assert abs(allocated_bytes(paths[1]) - allocated_bytes(paths[0])) <= \
        64 * 1024
    assert allocated_bytes(paths[1]) <= 12 * MiB + MiB


def test_broken_stream_starts_over_since_the_rbd_store_refuses_range(
        conf, glance_rbd, glance_rbd_conf, uploaded, tmp_path):
    """Real Glance, rbd store, behind a proxy that cuts the stream: the
    agent asks for the rest with Range, Glance answers 400, the download
    starts over from byte 0, at most [glance] download_restarts times,
    and the result says so."""
    image, data = uploaded
    spec = objects.ImageSpec(**{**_validated(image).to_dict(),
                                'locations': ()})
    proxy = FlakyProxy(glance_rbd.port)
    try:
        conf.config(group='glance', endpoint_override=proxy.url)
        conf.config(group='agent', chunk_size=64)
        # three cuts: the answer to the Range (Glance's 400) takes one
        proxy.cut_after, proxy.cuts_left = 3 * MiB, 3
        proxy.cut_with_reset = False
        cache = ImageCache('http-host', FileStore(str(tmp_path / 'ok')),
                           [GlanceHTTPBackend()])
        cache.start()

        result = cache.ensure(spec)

        assert result.state is State.CACHED, result.reason
        assert result.reason.startswith(
            'restarted 2 times from byte 0 (Glance refused Range from '
            'byte ')
        assert '(HTTP 400)); ' in result.reason
        ranges = [rng for _, rng in proxy.requests]
        assert ranges[0] is None and ranges[1].startswith('bytes=')
        assert ranges[2:] == [None, None]
        assert proxy.body_bytes[1] < 1000  # the 400's message only
        assert sha512_file(cache.store.path(image['id'])) == \
            hashlib.sha512(data).hexdigest()

        conf.config(group='glance', download_restarts=1)
        proxy.cuts_left = 3
        proxy.requests.clear()
        cache = ImageCache('http-host', FileStore(str(tmp_path / 'no')),
                           [GlanceHTTPBackend()])
        cache.start()

        result = cache.ensure(spec)

        assert result.state is State.ERROR
        assert 'cannot be resumed (Glance refused Range from byte ' in \
            result.reason
        assert 'download_restarts = 1 times' in result.reason
        assert len(proxy.requests) == 3
    finally:
        proxy.stop()
