"""RBD export benchmark: precache's verified export against ``rbd export``.

Starts its own single-node Ceph (``tools/ceph-cluster``, in a temporary
folder, stopped at the end, also on failure; by default its OSD keeps the
data in memory, so that, as with a real cluster, the OSD's reads do not
compete with the compute's writes for one disk), writes images the way
Glance's RBD store leaves them (holes, written zero runs, partially filled
objects; snapshot ``snap``, protected), then times, side by side in one
run, on the 2 GiB image (best of ``--repeat`` rounds, rounds interleaved):

(a)  ``rbd export`` CLI into a file (no verification, no fsync; shown
     also followed by ``sync`` of the file, durable like precache's);
(a') ``rbd export`` then ``sha512sum`` of the file (what verifying Nova's
     export would cost);
(b)  precache's export, verification on: the agent's own path
     (ImageCache → FileStore → backend rbd-export) in a fresh process,
     sha512 as Glance gives it, fsync and atomic rename included;
(b') the same with verification off;
(c)  ``cp`` + ``sync`` of a same-size local file (the exported one, as
     sparse): the disk's limit;
(d)  sha512 of the image's logical bytes in one thread (Python's hashlib,
     from the page cache): the hash's limit.

The agent's peak RSS (``ru_maxrss`` of the exporting process, imports
included) is measured for a 1 GiB and a 4 GiB image too, to show it is
flat in the image size.

Usage: ``python bench/rbd_export.py [--size-mib 2048] [--repeat 3]
[--store memstore|bluestore]``. The
last line is ``verified_vs_cli_sha512=<(a')/(b)> unverified_vs_rbd_cli=
<(a)/(b')> verified_vs_limit=<max(c,d)/(b)> peak_rss_mb=<z>``. Not a
test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent import futures
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'tools', 'ceph-cluster')
MiB = 1024 * 1024
OBJECT = 4 * MiB


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != 'CEPH_ARGS'}


# -- the image ------------------------------------------------------------


def delete_image(conf: str, image_id: str) -> None:
    name = 'images/%s' % image_id
    for argv in (['snap', 'unprotect', name + '@snap'],
                 ['snap', 'purge', '--no-progress', name],
                 ['rm', '--no-progress', name]):
        subprocess.run(['rbd', '--conf', conf, *argv], check=True,
                       capture_output=True, env=_env(), timeout=300)


def make_image(conf: str, size: int, seed: int) -> dict[str, Any]:
    """An image in pool ``images`` as Glance leaves it; its spec.

    Per 4 MiB object: 55% random data, 10% written zeros, 10% 1 MiB of
    data in the middle of a hole, 25% holes (about 2/3 allocated).
    """
    import rados
    import rbd

    image_id = str(uuid.uuid4())
    rng = random.Random(seed)
    sha512, md5 = hashlib.sha512(), hashlib.md5()  # noqa: S324 - Glance's
    zeros = bytes(OBJECT)
    client = rados.Rados(conffile=conf)
    client.connect(timeout=30)
    ioctx = client.open_ioctx('images')
    try:
        rbd.RBD().create(ioctx, image_id, size, old_format=False)
        with rbd.Image(ioctx, image_id) as image, \
                futures.ThreadPoolExecutor(8) as pool:
            pending: list[futures.Future] = []
            for offset in range(0, size, OBJECT):
                pick = rng.random() if offset else 0.0
                if pick < 0.55:
                    block = rng.randbytes(OBJECT)
                    pending.append(pool.submit(image.write, block, offset))
                elif pick < 0.65:
                    block = zeros
                    pending.append(pool.submit(image.write, zeros, offset))
                elif pick < 0.75:
                    piece = rng.randbytes(MiB)
                    pending.append(pool.submit(image.write, piece,
                                               offset + MiB))
                    block = bytes(MiB) + piece + bytes(2 * MiB)
                else:
                    block = zeros
                sha512.update(block)
                md5.update(block)
                if len(pending) >= 16:
                    for future in pending:
                        future.result()
                    pending = []
            for future in pending:
                future.result()
            image.flush()
            image.create_snap('snap')
            image.protect_snap('snap')
    finally:
        ioctx.close()
        fsid = client.get_fsid()
        client.shutdown()
    return {'id': image_id, 'size': size, 'disk_format': 'raw',
            'checksum': md5.hexdigest(), 'os_hash_algo': 'sha512',
            'os_hash_value': sha512.hexdigest(),
            'locations': ['rbd://%s/images/%s/snap' % (fsid, image_id)]}


# -- the agent's export, in a process of its own --------------------------


def child(args: dict[str, Any]) -> None:
    """Export one image the way the agent does; print JSON."""
    import resource

    from precache import objects, service
    from precache.conf import CONF

    service.register_library_opts(CONF)
    CONF([], project='precache', default_config_files=[])
    CONF.set_override('instances_path', args['instances'], group='agent')
    CONF.set_override('conf_file', args['conf'], group='ceph')
    # NOTE: what an agent process has loaded (messaging, heartbeats...).
    import precache.agent.service  # noqa: F401
    from precache.agent.backends.rbd import RbdExportBackend
    from precache.agent.cache import ImageCache
    from precache.agent.stores.file import FileStore

    cache = ImageCache('bench', FileStore(),
                       [RbdExportBackend(verify=args['verify'])])
    cache.start()
    spec = objects.ImageSpec.from_dict(args['image'])
    baseline = _rss_mb()
    start = time.monotonic()
    result = cache.ensure(spec)
    seconds = time.monotonic() - start
    print(json.dumps({
        'seconds': seconds, 'state': result.state.value,
        'reason': result.reason, 'baseline_rss_mb': baseline,
        'peak_rss_mb': resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024,
        'path': cache.store.path(spec.id)}))


def _rss_mb() -> float:
    with open('/proc/self/statm') as stream:
        return int(stream.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') \
            / MiB


def precache_export(conf: str, image: dict[str, Any], folder: str,
                    verify: bool) -> dict[str, Any]:
    instances = tempfile.mkdtemp(prefix='instances-', dir=folder)
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), '--child',
             json.dumps({'conf': conf, 'image': image, 'verify': verify,
                         'instances': instances})],
            capture_output=True, text=True, check=False, timeout=900,
            env=_env())
        if done.returncode:
            raise RuntimeError('export failed: %s' % done.stderr[-2000:])
        report = json.loads(done.stdout.splitlines()[-1])
        if report['state'] != 'cached':
            raise RuntimeError('export failed: %s' % report['reason'])
        return report
    finally:
        shutil.rmtree(instances, ignore_errors=True)


# -- the references -------------------------------------------------------


def timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=_env(), timeout=900)
    return time.monotonic() - start


def sha512_one_thread(path: str) -> float:
    digest = hashlib.sha512()
    buffer = bytearray(8 * MiB)
    view = memoryview(buffer)
    start = time.monotonic()
    with open(path, 'rb', buffering=0) as stream:
        while count := stream.readinto(buffer):
            digest.update(view[:count])
    return time.monotonic() - start


def warm(path: str) -> None:
    """Read a file once, so (c) and (d) measure the disk and the hash."""
    with open(path, 'rb', buffering=0) as stream:
        while stream.read(8 * MiB):
            pass


# -- main -----------------------------------------------------------------


def run(args: argparse.Namespace, folder: str) -> None:
    cluster = os.path.join(folder, 'ceph')
    started = subprocess.run([SCRIPT, 'start', cluster, '--store',
                              args.store, '--size', '20G'], check=True,
                             capture_output=True, text=True, env=_env())
    conf = dict(line.split('=', 1) for line in
                started.stdout.splitlines())['CEPH_CONF']
    try:
        measure(args, folder, conf)
    finally:
        subprocess.run([SCRIPT, 'stop', cluster], check=False, env=_env())


def measure(args: argparse.Namespace, folder: str, conf: str) -> None:
    print('Writing images (%d MiB, 1 GiB, 4 GiB) ...' % args.size_mib,
          flush=True)
    image = make_image(conf, args.size_mib * MiB, seed=1)
    out = os.path.join(folder, 'export.raw')
    copy = os.path.join(folder, 'copy.raw')
    spec = '%s@snap' % image['id']
    rbd_export = ['rbd', '--conf', conf, 'export', '--no-progress',
                  '--pool', 'images', spec, out]
    best: dict[str, float] = {}
    rss: dict[str, float] = {}

    last: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        last[name] = seconds
        best[name] = min(seconds, best.get(name, seconds))
        print('  %-4s %7.2f s' % (name, seconds), flush=True)

    def best_last(name: str) -> float:
        return last[name]

    for round_ in range(args.repeat):
        print('Round %d' % (round_ + 1), flush=True)
        for path in (out, copy):
            if os.path.exists(path):
                os.unlink(path)
        keep('a', timed(rbd_export))
        keep('a+s', timed(['sync', out]) + best_last('a'))
        os.unlink(out)
        keep("a'", timed(rbd_export) + timed(['sha512sum', out]))
        report = precache_export(conf, image, folder, verify=True)
        keep('b', report['seconds'])
        rss['%d MiB image, verified' % args.size_mib] = report['peak_rss_mb']
        report = precache_export(conf, image, folder, verify=False)
        keep("b'", report['seconds'])
        rss['%d MiB image, not verified' % args.size_mib] = \
            report['peak_rss_mb']
        warm(out)
        keep('c', timed(['cp', out, copy]) + timed(['sync', copy]))
        keep('d', sha512_one_thread(out))

    delete_image(conf, image['id'])
    for label, mib, seed in (('1 GiB', 1024, 2), ('4 GiB', 4096, 3)):
        other = make_image(conf, mib * MiB, seed=seed)
        for verify in (True, False):
            report = precache_export(conf, other, folder, verify=verify)
            rss['%s image, %s' % (label, 'verified' if verify else
                                  'not verified')] = report['peak_rss_mb']
        delete_image(conf, other['id'])

    size = args.size_mib * MiB
    print()
    print('| measure | seconds | MiB/s |')
    print('|---|---:|---:|')
    names = {'a': '(a) `rbd export` CLI, no verification',
             'a+s': '(a) then `sync` of the file (durable, as precache)',
             "a'": "(a') `rbd export` + `sha512sum`",
             'b': '(b) precache rbd-export, sha512 verified',
             "b'": "(b') precache rbd-export, not verified",
             'c': '(c) `cp` + `sync` of the exported file (disk limit)',
             'd': '(d) sha512 of the logical bytes, 1 thread'}
    for key, label in names.items():
        print('| %s | %.2f | %.0f |' % (label, best[key],
                                         size / MiB / best[key]))
    print()
    print('Peak RSS of the exporting agent process (MB): %s' % ', '.join(
        '%s %.0f' % (k, v) for k, v in rss.items()))
    verified = best["a'"] / best['b']
    unverified = best['a'] / best["b'"]
    limit = max(best['c'], best['d']) / best['b']
    print('verified_vs_cli_sha512=%.2f unverified_vs_rbd_cli=%.2f '
          'verified_vs_limit=%.2f peak_rss_mb=%.0f'
          % (verified, unverified, limit, max(rss.values())))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == '--child':
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=2048)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--store', default='memstore',
                        choices=['memstore', 'bluestore'],
                        help='the OSD\'s object store: memstore (default) '
                             'keeps the OSD off this machine\'s disk, as '
                             'a remote cluster is; bluestore puts it on '
                             'the same disk as the exported file')
    parser.add_argument('--dir', help='work folder (default: a new one in '
                                      '/var/tmp, removed at the end)')
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix='precache-rbd-bench-',
                                          dir='/var/tmp')
    try:
        run(args, folder)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
