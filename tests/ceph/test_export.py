"""rbd-export into the file store (Nova's _base), on a real cluster."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from precache import objects
from precache.agent.backends.rbd import RbdCloneBackend, RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore
from tests.ceph.helpers import MiB, RbdImage, allocated_bytes, sha512_file

State = objects.HostImageState


@pytest.fixture(scope='module')
def big(ceph) -> RbdImage:
    """256 MiB with holes, zero runs and partial objects (shared, read
    only)."""
    return ceph.make_image(256 * MiB, seed=1)


@pytest.fixture(scope='module')
def small(ceph) -> RbdImage:
    return ceph.make_image(32 * MiB, seed=2)


def _cache(conf, store: FileStore | None = None, **export) -> ImageCache:
    store = store or FileStore()
    cache = ImageCache('host-1', store,
                       [RbdCloneBackend(), RbdExportBackend(**export)])
    cache.start()
    return cache


def _leftovers(store: FileStore) -> list[str]:
    return sorted(os.listdir(store.base_dir))


def test_export_is_identical_to_rbd_export_and_sparse(ceph_conf_main, ceph,
                                                      big, tmp_path):
    cache = _cache(ceph_conf_main)
    result = cache.ensure(big.spec())
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.RBD_EXPORT
    assert result.bytes == big.size
    path = cache.store.path(big.id)
    assert _leftovers(cache.store) == [os.path.basename(path)]

    reference = str(tmp_path / 'rbd-export.raw')
    ceph.cli('rbd', 'export', '--no-progress',
             '%s/%s@snap' % (big.pool, big.id), reference)
    assert os.path.getsize(path) == big.size
    assert filecmp.cmp(path, reference, shallow=False)
    # Sparse: no more blocks than the allocated extents, no fewer than the
    # non-zero data (zero runs become holes too).
    blocks = allocated_bytes(path)
    assert big.data_bytes <= blocks <= big.allocated_bytes + MiB, (
        big.data_bytes, blocks, big.allocated_bytes)
    assert blocks < big.size * 0.75


def test_second_request_only_touches(ceph_conf_main, ceph, small):
    cache = _cache(ceph_conf_main)
    assert cache.ensure(small.spec()).state is State.CACHED
    path = cache.store.path(small.id)
    old = time.time() - 3600
    os.utime(path, (old, old))
    before = ceph.osd_counters()
    result = cache.ensure(small.spec())
    after = ceph.osd_counters()
    assert result.state is State.EXISTING
    assert result.bytes == 0 and result.method is None
    assert os.stat(path).st_mtime > old + 3000
    # Nothing was read from the cluster: not a byte of data.
    assert after['op_out_bytes'] == before['op_out_bytes']


def test_hash_mismatch_installs_nothing(ceph_conf_main, small):
    cache = _cache(ceph_conf_main)
    result = cache.ensure(small.spec(os_hash_value='0' * 128))
    assert result.state is State.ERROR
    assert 'sha512 mismatch' in result.reason, result.reason
    assert 'rbd-export' in result.reason
    assert _leftovers(cache.store) == []


def test_md5_is_checked_without_os_hash(ceph_conf_main, small):
    cache = _cache(ceph_conf_main)
    result = cache.ensure(small.spec(os_hash_algo=None, os_hash_value=None,
                                     checksum='0' * 32))
    assert result.state is State.ERROR
    assert 'md5 mismatch' in result.reason
    assert _leftovers(cache.store) == []
    result = cache.ensure(small.spec(os_hash_algo=None, os_hash_value=None))
    assert result.state is State.CACHED, result.reason


def test_wrong_size_is_refused_before_reading(ceph_conf_main, ceph, small):
    cache = _cache(ceph_conf_main)
    before = ceph.osd_counters()
    result = cache.ensure(small.spec(size=small.size + 1))
    assert result.state is State.ERROR
    assert 'has %d bytes, Glance says %d' % (small.size, small.size + 1) \
        in result.reason
    # Only the image's header was read (a few hundred bytes), no data.
    read = ceph.osd_counters()['op_out_bytes'] - before['op_out_bytes']
    assert read < 64 * 1024
    assert _leftovers(cache.store) == []


def test_bad_locations_each_get_a_precise_reason(ceph_conf_main, ceph,
                                                 small):
    cache = _cache(ceph_conf_main)
    unknown = 'rbd://00000000-0000-0000-0000-000000000000/images/%s/snap' \
        % small.id
    cases = {
        'unknown cluster': (unknown,
                            'is on cluster 00000000-0000-0000-0000-'
                            '000000000000, not a configured one (default '
                            '(fsid %s))' % ceph.fsid),
        'missing snapshot': (small.location.replace('/snap', '/nosuch'),
                             'not found'),
        'missing image': ('rbd://%s/images/nosuch/snap' % ceph.fsid,
                          'not found'),
        'missing pool': (small.location.replace('/images/', '/nopool/'),
                         'not found'),
        'not a snapshot URL': ('rbd://%s/images/%s' % (ceph.fsid, small.id),
                               'not an rbd snapshot location'),
        'blank part': ('rbd://%s//%s/snap' % (ceph.fsid, small.id),
                       'blank component'),
    }
    # NOTE: ids of their own, so no case sees another's result.
    specs = [small.spec(id=str(uuid.uuid4()), locations=(url,))
             for url, _ in cases.values()]
    results = cache.ensure_all([*specs, small.spec()])
    for (what, (_url, expected)), result in zip(cases.items(), results,
                                                strict=False):
        assert result.state is State.ERROR, what
        assert expected in result.reason, (what, result.reason)
    # The good image of the same request is unaffected.
    assert results[-1].state is State.CACHED, results[-1].reason
    assert _leftovers(cache.store) == [os.path.basename(
        cache.store.path(small.id))]


def test_no_rbd_location_is_unsupported(ceph_conf_main, small):
    cache = _cache(ceph_conf_main)
    result = cache.ensure(small.spec(locations=('/nowhere',)))
    assert result.state is State.UNSUPPORTED
    assert result.reason == ('rbd-clone: cannot fill a file store; '
                             'rbd-export: no rbd:// location')


def test_permission_denied(ceph_conf_main, ceph, small):
    """A user whose caps do not cover the images pool."""
    keyring = ceph.add_user('vmsonly', 'mon', 'profile rbd',
                            'osd', 'profile rbd pool=vms')
    ceph_conf_main.config(group='ceph', user='vmsonly', keyring=keyring)
    cache = _cache(ceph_conf_main)
    result = cache.ensure(small.spec())
    assert result.state is State.ERROR
    assert 'permission denied' in result.reason, result.reason
    assert _leftovers(cache.store) == []


def test_unreachable_cluster_fails_fast(ceph_conf_main, ceph, small,
                                        tmp_path):
    conf = tmp_path / 'dead.conf'
    conf.write_text('[global]\nmon_host = v2:127.0.0.1:1\n'
                    'auth_client_required = none\n')
    ceph_conf_main.config(group='ceph', connect_timeout=2)
    ceph_conf_main.config(group='ceph', conf_file=str(conf))
    cache = _cache(ceph_conf_main)
    start = time.monotonic()
    result = cache.ensure(small.spec())
    assert time.monotonic() - start < 15
    assert result.state is State.ERROR
    assert 'connecting to cluster default' in result.reason, result.reason


def test_image_deleted_mid_export(ceph_conf_main, ceph):
    victim = ceph.make_image(64 * MiB, seed=3, pattern='data')
    # NOTE: slowed down to ~16 MiB/s so the deletion lands mid-way.
    ceph_conf_main.config(group='agent', download_rate_limit=16 * 1024)
    ceph_conf_main.config(group='ceph', export_concurrency=2,
                          export_chunk_size=1024)
    cache = _cache(ceph_conf_main)
    temp = cache.store.temp_path(victim.id)
    results: list[objects.HostImageResult] = []
    worker = threading.Thread(target=lambda: results.append(
        cache.ensure(victim.spec())))
    worker.start()
    deadline = time.monotonic() + 20
    while not (os.path.exists(temp) and os.path.getsize(temp) > 0):
        assert time.monotonic() < deadline, 'export did not start'
        time.sleep(0.02)
    ceph.delete_image('images', victim.id)
    worker.join(60)
    [result] = results
    assert result.state is State.ERROR
    # NOTE: librbd reads the deleted snapshot as zeros, without an error;
    # the export notices the image is gone (and the hash would not match).
    assert '%s disappeared during the export' % victim.location \
        in result.reason, result.reason
    assert _leftovers(cache.store) == []


def test_disk_full(ceph_conf_main, big, tmp_path):
    mount = tmp_path / 'small'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=48m',
                           'tmpfs', str(mount)], capture_output=True,
                          check=False)
    if done.returncode:
        pytest.fail('cannot mount a small tmpfs here: %s' % done.stderr)
    try:
        cache = _cache(ceph_conf_main, FileStore(str(mount)))
        base = cache.store.base_dir
        # Refused before anything is written: the size says it.
        result = cache.ensure(big.spec())
        assert result.state is State.ERROR
        assert 'not enough space in %s: need ' % base in result.reason, \
            result.reason
        assert _leftovers(cache.store) == []
        # Size unknown: the export fills the disk, and the cache is named.
        result = cache.ensure(big.spec(size=None))
        assert result.state is State.ERROR
        assert 'not enough space in %s: need more than the ' % base in \
            result.reason, result.reason
        assert _leftovers(cache.store) == []
    finally:
        subprocess.run(['umount', '-l', str(mount)], check=False)


def test_qcow2_is_verified_then_converted(ceph_conf_main, ceph, tmp_path):
    raw = tmp_path / 'disk.raw'
    with open(raw, 'wb') as out:
        out.write(os.urandom(3 * MiB))
        out.seek(20 * MiB)
        out.write(os.urandom(MiB))
        out.truncate(32 * MiB)
    qcow2 = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                    str(raw), str(qcow2)], check=True)
    image = ceph.import_file(str(qcow2), 'qcow2')
    cache = _cache(ceph_conf_main)

    bad = cache.ensure(image.spec(os_hash_value='f' * 128))
    assert bad.state is State.ERROR and 'sha512 mismatch' in bad.reason
    assert _leftovers(cache.store) == []

    result = cache.ensure(image.spec())
    assert result.state is State.CACHED, result.reason
    path = cache.store.path(image.id)
    assert filecmp.cmp(path, raw, shallow=False)
    assert _leftovers(cache.store) == [os.path.basename(path)]
    assert cache.ensure(image.spec()).state is State.EXISTING

    ceph_conf_main.config(group='agent', force_raw_images=False)
    other = ceph.import_file(str(qcow2), 'qcow2')
    assert cache.ensure(other.spec()).state is State.CACHED
    assert filecmp.cmp(cache.store.path(other.id), qcow2, shallow=False)


def test_qcow2_with_a_backing_file_is_refused(ceph_conf_main, ceph,
                                              tmp_path):
    base = tmp_path / 'secret.raw'
    base.write_bytes(b'secret' * 1000)
    qcow2 = tmp_path / 'evil.qcow2'
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', '-F', 'raw', '-b',
                    str(base), str(qcow2)], check=True, capture_output=True)
    image = ceph.import_file(str(qcow2), 'qcow2')
    cache = _cache(ceph_conf_main)
    result = cache.ensure(image.spec())
    assert result.state is State.ERROR
    assert 'backing file' in result.reason, result.reason
    assert _leftovers(cache.store) == []


def test_without_python_rbd_the_backends_say_why(ceph_conf_main, small):
    code = textwrap.dedent('''
        import sys
        sys.modules['rados'] = sys.modules['rbd'] = None
        from precache import objects
        from precache.agent.backends.rbd import (RbdCloneBackend,
                                                 RbdExportBackend)
        spec = objects.ImageSpec(id='x', locations=(%r,))
        for backend in (RbdCloneBackend(), RbdExportBackend()):
            print(backend.unsupported_reason(spec))
    ''' % small.location)
    done = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith('the Python modules rados and rbd are not '
                               'importable'), line


KILL_SCRIPT = '''
import sys
from precache.conf import CONF
from precache import objects, service
service.register_library_opts(CONF)
CONF([], project='precache', default_config_files=[])
CONF.set_override('instances_path', sys.argv[1], group='agent')
CONF.set_override('download_rate_limit', 8 * 1024, group='agent')
CONF.set_override('conf_file', sys.argv[2], group='ceph')
CONF.set_override('export_chunk_size', 1024, group='ceph')
from precache.agent.backends.rbd import RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.stores.file import FileStore
cache = ImageCache('host-1', FileStore(), [RbdExportBackend()])
cache.start()
print(cache.ensure(objects.ImageSpec.from_dict(eval(sys.argv[3]))))
'''


def test_agent_killed_mid_export_leaves_nothing_visible(ceph_conf_main,
                                                        ceph, tmp_path):
    image = ceph.make_image(64 * MiB, seed=4, pattern='data')
    instances = str(tmp_path / 'instances')
    proc = subprocess.Popen(
        [sys.executable, '-c', KILL_SCRIPT, instances, ceph.conf,
         repr(image.spec().to_dict())], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    store = FileStore(instances)
    temp, final = store.temp_path(image.id), store.path(image.id)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.exists(temp) and os.path.getsize(temp) > 0):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, 'export did not start'
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(10)
    assert os.path.exists(temp) and not os.path.exists(final)

    ceph_conf_main.config(group='agent', instances_path=instances)
    cache = _cache(ceph_conf_main, FileStore(instances))   # start cleans up
    assert not os.path.exists(temp)
    result = cache.ensure(image.spec())
    assert result.state is State.CACHED, result.reason
    assert sha512_file(final) == image.sha512
    assert _leftovers(store) == [os.path.basename(final)]


def test_cluster_script_start_is_idempotent(ceph):
    pids = ceph.pids()
    assert all(pids.values()), pids
    fsid = ceph.fsid
    started = time.monotonic()
    ceph.start()
    assert time.monotonic() - started < 10
    assert ceph.fsid == fsid and ceph.pids() == pids
