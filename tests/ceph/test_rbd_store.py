"""Store ``rbd`` (RBD-backed computes): clone on the same cluster, verified
sparse copy from another cluster, never a _base file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from precache import objects
from precache.agent.backends.rbd import RbdCloneBackend, RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.rbd import (
    STAMP_CACHED,
    STAMP_TOUCHED,
    TEMP_SUFFIX,
    RbdStore,
)
from tests.ceph.conftest import configure_other
from tests.ceph.helpers import MiB, RbdImage

State = objects.HostImageState


@pytest.fixture(scope='module')
def image(ceph) -> RbdImage:
    return ceph.make_image(64 * MiB, seed=11)


@pytest.fixture(scope='module')
def foreign(ceph_other) -> RbdImage:
    """An image on the second cluster (another fsid)."""
    return ceph_other.make_image(96 * MiB, seed=12)


@pytest.fixture
def two_clusters(ceph_conf_main, ceph_other):
    configure_other(ceph_conf_main, ceph_other)
    return ceph_conf_main


def _cache(host: str = 'rbd-host-1') -> ImageCache:
    cache = ImageCache(host, RbdStore(host=host),
                       [RbdCloneBackend(), RbdExportBackend()])
    cache.start()
    return cache


def _no_base_files(conf) -> None:
    instances = conf.conf.agent.instances_path
    assert not os.path.exists(os.path.join(instances, '_base')), \
        os.listdir(os.path.join(instances, '_base'))


def _temps(ceph) -> list[str]:
    return [n for n in ceph.images('vms') if n.endswith(TEMP_SUFFIX)]


def test_same_cluster_is_a_clone(ceph_conf_main, ceph, image):
    cache = _cache()
    result = cache.ensure(image.spec())
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.RBD_CLONE
    assert result.bytes == 0
    info = ceph.image_info('vms', image.id)
    assert info['parent']['pool'] == 'images'
    assert info['parent']['image'] == image.id
    assert info['parent']['snapshot'] == 'snap'
    assert info['size'] == image.size
    assert ceph.read_image('vms', image.id, 'snap')[0] == image.sha512
    snaps = {s['name']: s for s in
             __import__('json').loads(ceph.cli(
                 'rbd', 'snap', 'ls', '--format', 'json',
                 'vms/%s' % image.id))}
    assert 'snap' in snaps
    assert ceph.cli('rbd', 'info', 'vms/%s@snap' % image.id).count(
        'protected: True') == 1
    assert cache.store.location(image.id) == 'rbd://%s/vms/%s/snap' % (
        ceph.fsid, image.id)
    assert _temps(ceph) == []
    _no_base_files(ceph_conf_main)


def test_second_request_stamps_and_reads_nothing(ceph_conf_main, ceph,
                                                 image):
    cache = _cache()
    first = cache.ensure(image.spec())
    assert first.state in (State.CACHED, State.EXISTING), first.reason
    stamped = ceph.metadata('vms', image.id)
    assert STAMP_CACHED in stamped
    time.sleep(0.01)
    before = ceph.osd_counters()
    result = cache.ensure(image.spec())
    after = ceph.osd_counters()
    assert result.state is State.EXISTING, result.reason
    assert result.bytes == 0
    stamps = ceph.metadata('vms', image.id)
    assert stamps[STAMP_TOUCHED] > stamped[STAMP_TOUCHED]
    assert stamps[STAMP_CACHED] == stamped[STAMP_CACHED]
    # Only image headers and the lock object were read: no data.
    assert after['op_out_bytes'] - before['op_out_bytes'] < 64 * 1024
    _no_base_files(ceph_conf_main)


def test_other_cluster_is_a_verified_sparse_copy(two_clusters, ceph,
                                                 ceph_other, foreign):
    assert ceph_other.fsid != ceph.fsid
    cache = _cache()
    result = cache.ensure(foreign.spec())
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.RBD_EXPORT
    assert 'no location on the store\'s cluster default' in (
        cache.backends[0].unsupported_reason(foreign.spec()))
    info = ceph.image_info('vms', foreign.id)
    assert 'parent' not in info
    digest, allocated = ceph.read_image('vms', foreign.id, 'snap')
    assert digest == foreign.sha512
    # Zero runs and holes were not written: only the non-zero data.
    assert foreign.data_bytes <= allocated <= foreign.data_bytes + 4 * MiB
    assert ceph.cli('rbd', 'info', 'vms/%s@snap' % foreign.id).count(
        'protected: True') == 1
    assert _temps(ceph) == []
    _no_base_files(two_clusters)
    assert cache.ensure(foreign.spec()).state is State.EXISTING


def test_copy_with_wrong_hash_leaves_no_image(two_clusters, ceph,
                                              ceph_other):
    bad = ceph_other.make_image(16 * MiB, seed=13)
    cache = _cache()
    result = cache.ensure(bad.spec(os_hash_value='1' * 128))
    assert result.state is State.ERROR
    assert 'sha512 mismatch' in result.reason
    assert bad.id not in ceph.images('vms')
    assert _temps(ceph) == []


def test_unknown_cluster_is_an_error(ceph_conf_main, ceph, ceph_other):
    """The second cluster exists but is not configured."""
    lost = ceph_other.make_image(8 * MiB, seed=14)
    cache = _cache()
    result = cache.ensure(lost.spec())
    assert result.state is State.ERROR
    assert 'is on cluster %s, not a configured one' % ceph_other.fsid \
        in result.reason, result.reason
    assert lost.id not in ceph.images('vms')


def test_qcow2_is_not_for_the_rbd_store(ceph_conf_main, image):
    cache = _cache()
    spec = image.spec(id='0d6e0c63-8f4f-4b8e-9a4b-2a5b8f0b7d11',
                      disk_format='qcow2')
    result = cache.ensure(spec)
    assert result.state is State.UNSUPPORTED
    assert 'only raw images are cloned' in result.reason
    assert 'the rbd store holds raw images only' in result.reason


def test_missing_snapshot_then_good_image(ceph_conf_main, ceph, image):
    cache = _cache()
    other = ceph.make_image(8 * MiB, seed=15)
    broken = other.spec(locations=(other.location.replace('/snap',
                                                          '/gone'),))
    results = cache.ensure_all([broken, image.spec()])
    assert results[0].state is State.ERROR
    assert 'cloning %s: not found' % broken.locations[0] in \
        results[0].reason, results[0].reason
    assert 'not found' in results[0].reason
    assert results[1].state.is_resident
    assert other.id not in ceph.images('vms')
    assert _temps(ceph) == []


def test_permission_denied_on_the_store_pool(ceph_conf_main, ceph):
    keyring = ceph.add_user('readonly', 'mon', 'profile rbd',
                            'osd', 'profile rbd-read-only')
    ceph_conf_main.config(group='ceph', user='readonly', keyring=keyring)
    fresh = ceph.make_image(8 * MiB, seed=16)
    result = _cache().ensure(fresh.spec())
    assert result.state is State.ERROR
    assert 'permission denied' in result.reason, result.reason
    assert fresh.id not in ceph.images('vms')
    assert _temps(ceph) == []


def test_hosts_sharing_the_pool_make_it_once(ceph_conf_main, ceph):
    shared = ceph.make_image(32 * MiB, seed=17)
    ceph_conf_main.config(group='agent', download_rate_limit=0)
    caches = [ImageCache('rbd-host-%d' % n, RbdStore(host='rbd-host-%d' % n),
                         [RbdExportBackend()]) for n in range(3)]
    results: list[objects.HostImageResult] = []
    threads = [threading.Thread(target=lambda c=c: results.append(
        c.ensure(shared.spec()))) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    states = sorted(r.state.value for r in results)
    assert states == ['cached', 'existing', 'existing'], results
    assert ceph.read_image('vms', shared.id, 'snap')[0] == shared.sha512


KILL_SCRIPT = '''
import sys
from precache.conf import CONF
from precache import objects, service
service.register_library_opts(CONF)
CONF([], project='precache', default_config_files=[])
from precache.conf import ceph as ceph_conf
CONF.set_override('download_rate_limit', 8 * 1024, group='agent')
CONF.set_override('conf_file', sys.argv[1], group='ceph')
CONF.set_override('other_clusters', ['other'], group='ceph')
CONF.set_override('export_chunk_size', 1024, group='ceph')
CONF.set_override('lock_lease', 5, group='rbd_store')
ceph_conf.cluster_group(CONF, 'other')
CONF.set_override('conf_file', sys.argv[2], group='ceph:other')
from precache.agent.backends.rbd import RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.rbd import RbdStore
cache = ImageCache('rbd-host-9', RbdStore(host='rbd-host-9'),
                   [RbdExportBackend()])
cache.start()
print(cache.ensure(objects.ImageSpec.from_dict(eval(sys.argv[3]))))
'''


def test_agent_killed_mid_copy(two_clusters, ceph, ceph_other):
    victim = ceph_other.make_image(32 * MiB, seed=18, pattern='data')
    proc = subprocess.Popen(
        [sys.executable, '-c', KILL_SCRIPT, ceph.conf, ceph_other.conf,
         repr(victim.spec().to_dict())], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _temps(ceph):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, 'copy did not start'
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait(10)
    [dead] = _temps(ceph)
    assert dead.startswith(victim.id + '.')
    assert victim.id not in ceph.images('vms')

    # A new agent: the dead one's lock lapses (lock_lease), then the image
    # is made under a new temporary name (the dead client still watches
    # its leftover for ~30 s, and librbd cannot remove it until then).
    two_clusters.config(group='rbd_store', lock_lease=5)
    start = time.monotonic()
    cache = _cache('rbd-host-9')
    result = cache.ensure(victim.spec())
    assert result.state is State.CACHED, result.reason
    assert time.monotonic() - start < 20
    assert ceph.read_image('vms', victim.id, 'snap')[0] == victim.sha512
    assert set(_temps(ceph)) <= {dead}


def test_abandoned_leftovers_are_removed_at_start(ceph_conf_main, ceph):
    import rbd

    ioctx = ceph.client().open_ioctx('vms')
    name = '9f1c1d0e-1111-4222-8333-944455556666.abc' + TEMP_SUFFIX
    try:
        rbd.RBD().create(ioctx, name, 4 * MiB, old_format=False)
        store = RbdStore(host='rbd-host-1')
        with rbd.Image(ioctx, name):
            # NOTE: open by a live client: left alone.
            assert store.remove_stale_temp_files() == []
            assert name in ceph.images('vms')
        removed = store.remove_stale_temp_files()
        assert removed == ['rbd:vms/%s' % name]
        assert name not in ceph.images('vms')
    finally:
        ioctx.close()
