"""glance-http benchmark: precache's verified download against ``curl``.

Starts real Glance (tests/openstack/glance_server.py: Glance 33 under
gunicorn, no Keystone) with its file store and, unless ``--stores fs``,
a second one whose default store is rbd on a single-node Ceph of its own
(``tools/ceph-cluster``, memstore OSD, stopped at the end, also on
failure). Uploads one sparse raw image to each (default 1 GiB, laid out
as bench/rbd_export.py's: per 4 MiB, 55 % random data, 10 % zeros, 10 %
one MiB of data in zeros, 25 % zeros), then times, side by side in one
run, per store, best of ``--repeat`` rounds (rounds interleaved, a
``sync`` before each measure):

(a)  ``curl`` of ``/v2/images/<id>/file`` into a file (no fsync);
(a') ``curl`` then ``sha512sum`` of the file (a verified download with
     the usual tools);
(b)  precache's glance-http, the agent's own path (ImageCache → FileStore
     → GlanceHTTPBackend) in a fresh process: sha512 verified, holes
     kept, fsynced, renamed;
(b') the same without verification (the image's hashes left out);
(c)  ``cp --sparse=always`` + ``sync`` of the downloaded file: the disk;
(d)  sha512 of the image in one thread (hashlib, from the page cache).

CPU-seconds count the downloading process and the servers (Glance's
processes, and on the rbd store the Ceph daemons): on 2 cores they share
the CPU. The limit of a verified download is ``max((c), (d), (b'),
(CPU-s (b') + CPU-s (d)) / cores)``. The holes: bytes allocated by
glance-http's file against those of rbd-export's from the same rbd
image (``allocated_vs_rbd_export``, 1.00 when the same).

Usage: ``python bench/glance_http.py [--size-mib 1024] [--repeat 3]
[--stores fs,rbd]``. Per store a line ``<store>: verified_vs_curl_sha512=
... verified_vs_limit=... allocated_vs_rbd_export=...``; the last line
has the same three, the worst of the stores. Traffic goes to 127.0.0.1
only. Not a test: nothing here asserts a timing.
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
from typing import Any

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MiB = 1024 * 1024
OBJECT = 4 * MiB

import rbd_export  # noqa: E402 - bench/ is this script's folder

from tests.openstack import glance_server  # noqa: E402


def write_image(path: str, size: int, seed: int) -> dict[str, Any]:
    """A raw file laid out as bench/rbd_export.py's images; its hashes."""
    rng = random.Random(seed)
    sha512, md5 = hashlib.sha512(), hashlib.md5()  # noqa: S324 - Glance's
    with open(path, 'wb') as stream:
        for offset in range(0, size, OBJECT):
            pick = rng.random() if offset else 0.0
            if pick < 0.55:
                block = rng.randbytes(OBJECT)
            elif pick < 0.75 and pick >= 0.65:
                block = bytes(MiB) + rng.randbytes(MiB) + bytes(2 * MiB)
            else:
                block = bytes(OBJECT)
            stream.write(block)
            sha512.update(block)
            md5.update(block)
    return {'size': size, 'checksum': md5.hexdigest(),
            'os_hash_algo': 'sha512', 'os_hash_value': sha512.hexdigest()}


def upload(url: str, path: str) -> dict[str, Any]:
    answer = requests.post(url + '/v2/images', timeout=30, json={
        'name': 'bench', 'disk_format': 'raw', 'container_format': 'bare'})
    answer.raise_for_status()
    image_id = answer.json()['id']
    with open(path, 'rb') as stream:
        requests.put(url + '/v2/images/%s/file' % image_id, data=stream,
                     timeout=1800, headers={
                         'Content-Type': 'application/octet-stream'}
                     ).raise_for_status()
    return glance_server.Images(url).get(image_id)


# -- the agent's download, in a process of its own ------------------------


def child(args: dict[str, Any]) -> None:
    """Download one image the way the agent does; print JSON."""
    from precache import objects, service
    from precache.conf import CONF

    service.register_library_opts(CONF)
    CONF([], project='precache', default_config_files=[])
    CONF.set_override('instances_path', args['instances'], group='agent')
    CONF.set_override('endpoint_override', args['url'], group='glance')
    import precache.agent.service  # noqa: F401 - what an agent loads
    from precache.agent.backends.glance import GlanceHTTPBackend
    from precache.agent.cache import ImageCache
    from precache.agent.stores.file import FileStore

    cache = ImageCache('bench', FileStore(), [GlanceHTTPBackend()])
    cache.start()
    service.freeze_startup_objects()  # as precache-agent does
    spec = objects.ImageSpec.from_dict(args['image'])
    start = time.monotonic()
    result = cache.ensure(spec)
    seconds = time.monotonic() - start
    path = cache.store.path(spec.id)
    print(json.dumps({
        'seconds': seconds, 'state': result.state.value,
        'reason': result.reason, 'peak_rss_mb': rbd_export._peak_rss_mb(),
        'allocated': os.stat(path).st_blocks * 512
        if os.path.exists(path) else 0}))


def group_cpu(pgid: int) -> float:
    """CPU-seconds used so far by the processes of process group
    ``pgid`` (Glance's gunicorn and its worker)."""
    total = 0.0
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as stream:
                fields = stream.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / \
                os.sysconf('SC_CLK_TCK')
    return total


class Store:
    """One Glance, its image and what counts as its servers' CPU."""

    def __init__(self, name: str, server: glance_server.GlanceServer,
                 image: dict[str, Any], cluster: str | None) -> None:
        self.name = name
        self.server = server
        self.image = image
        self.cluster = cluster

    def servers_cpu(self) -> float:
        assert self.server.process is not None
        return group_cpu(self.server.process.pid) + (
            rbd_export.daemons_cpu(self.cluster) if self.cluster else 0.0)


def precache_download(store: Store, folder: str,
                      verify: bool) -> dict[str, Any]:
    from precache.clients.images import spec_from_glance

    spec = spec_from_glance(store.image).to_dict()
    spec['locations'] = []
    if not verify:
        spec.update(checksum=None, os_hash_algo=None, os_hash_value=None)
    instances = tempfile.mkdtemp(prefix='instances-', dir=folder)
    os.sync()
    cpu = rbd_export.children_cpu() + store.servers_cpu()
    try:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), '--child',
             json.dumps({'url': store.server.url, 'image': spec,
                         'instances': instances})],
            capture_output=True, text=True, check=False, timeout=900,
            env={**os.environ, 'PYTHONPATH': ROOT})
        if done.returncode:
            raise RuntimeError('download failed: %s' % done.stderr[-2000:])
        report = json.loads(done.stdout.splitlines()[-1])
        report['cpu_seconds'] = rbd_export.children_cpu() + \
            store.servers_cpu() - cpu
        if report['state'] != 'cached':
            raise RuntimeError('download failed: %s' % report['reason'])
        return report
    finally:
        shutil.rmtree(instances, ignore_errors=True)


def rbd_export_allocated(store: Store, folder: str, conf: str) -> int:
    """Bytes rbd-export leaves allocated for the rbd store's image."""
    from precache.clients.images import spec_from_glance

    spec = spec_from_glance(store.image).to_dict()
    return int(rbd_export.precache_export(conf, spec, folder,
                                          True)['allocated'])


def keep(best: dict[str, float], cpu: dict[str, float], name: str,
         seconds: float, cpu_seconds: float | None = None) -> None:
    """Print one measure; keep the best time (and CPU-seconds)."""
    best[name] = min(seconds, best.get(name, seconds))
    if cpu_seconds is not None:
        cpu[name] = min(cpu_seconds, cpu.get(name, cpu_seconds))
    print('  %-4s %7.2f s%s' % (name, seconds, '' if cpu_seconds is None
                                 else ', %.2f CPU-s' % cpu_seconds),
          flush=True)


# -- main -----------------------------------------------------------------


def measure(stores: list[Store], folder: str, repeat: int,
            export_allocated: int | None) -> None:
    out = os.path.join(folder, 'curl.raw')
    copy = os.path.join(folder, 'copy.raw')
    cores = os.cpu_count() or 1
    ratios: dict[str, list[float]] = {}
    for store in stores:
        url = '%s/v2/images/%s/file' % (store.server.url, store.image['id'])
        curl = ['curl', '-sSf', '-o', out, url]
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        rss: list[float] = []
        allocated = 0
        for round_ in range(repeat):
            print('%s store, round %d' % (store.name, round_ + 1),
                  flush=True)
            for path in (out, copy):
                if os.path.exists(path):
                    os.unlink(path)
            keep(best, cpu, 'a', rbd_export.timed(curl))
            os.unlink(out)
            keep(best, cpu, "a'", rbd_export.timed(curl)
                 + rbd_export.timed(['sha512sum', out], sync=False))
            for key, verify in (('b', True), ("b'", False)):
                report = precache_download(store, folder, verify)
                keep(best, cpu, key, report['seconds'],
                     report['cpu_seconds'])
                rss.append(report['peak_rss_mb'])
                allocated = report['allocated']
            rbd_export.warm(out)
            keep(best, cpu, 'c', rbd_export.timed(
                ['cp', '--sparse=always', out, copy])
                + rbd_export.timed(['sync', copy], sync=False))
            keep(best, cpu, 'd', *rbd_export.sha512_one_thread(out))

        size = store.image['size']
        names = {'a': '(a) `curl` to a file',
                 "a'": "(a') `curl` + `sha512sum`",
                 'b': '(b) precache glance-http, sha512 verified',
                 "b'": "(b') precache glance-http, not verified",
                 'c': '(c) `cp --sparse=always` + `sync` (disk limit)',
                 'd': '(d) sha512 of the image, 1 thread'}
        print()
        print('%s store (%d MiB image):' % (store.name, size // MiB))
        print('| measure | seconds | MiB/s | CPU-s |')
        print('|---|---:|---:|---:|')
        for key, label in names.items():
            print('| %s | %.2f | %.0f | %s |' % (
                label, best[key], size / MiB / best[key],
                '%.2f' % cpu[key] if key in cpu else ''))
        limit = max(best['c'], best['d'], best["b'"],
                    (cpu["b'"] + cpu['d']) / cores)
        print("limit = max((c), (d), (b'), (CPU-s (b') + CPU-s (d)) / %d) "
              "= max(%.2f, %.2f, %.2f, %.2f) = %.2f s; peak RSS %.0f MB; "
              "%d MB allocated of %d MB" % (
                  cores, best['c'], best['d'], best["b'"],
                  (cpu["b'"] + cpu['d']) / cores, limit, max(rss),
                  allocated / 1e6, size / 1e6))
        found = [best["a'"] / best['b'], limit / best['b'],
                 allocated / export_allocated if export_allocated
                 else float('nan')]
        ratios[store.name] = found
        print('%s: verified_vs_curl_sha512=%.2f verified_vs_limit=%.2f '
              'allocated_vs_rbd_export=%.2f' % (store.name, *found))
        print(flush=True)
    print('CPU: %s, %d cores; sha512 in one thread %.0f MiB/s; load '
          'average %s' % (rbd_export.cpu_model(), cores,
                          rbd_export.hash_speed(), ' '.join(
                              '%.2f' % x for x in os.getloadavg())))
    worst = [min(r[0] for r in ratios.values()),
             min(r[1] for r in ratios.values()),
             max(r[2] for r in ratios.values())]
    print('verified_vs_curl_sha512=%.2f verified_vs_limit=%.2f '
          'allocated_vs_rbd_export=%.2f' % tuple(worst))


def run(args: argparse.Namespace, folder: str) -> None:
    source = os.path.join(folder, 'source.raw')
    print('Writing a %d MiB image, starting Glance ...' % args.size_mib,
          flush=True)
    write_image(source, args.size_mib * MiB, seed=1)
    names = args.stores.split(',')
    cluster = conf = None
    servers: list[glance_server.GlanceServer] = []
    glance_server.ensure_venv()
    try:
        if 'rbd' in names:
            cluster = os.path.join(folder, 'ceph')
            started = subprocess.run(
                [rbd_export.SCRIPT, 'start', cluster, '--store', 'memstore',
                 '--size', '20G'], check=True, capture_output=True,
                text=True, env=rbd_export._env())
            conf = dict(line.split('=', 1) for line in
                        started.stdout.splitlines())['CEPH_CONF']
        stores = []
        for name in names:
            server = glance_server.GlanceServer(
                os.path.join(folder, 'glance-' + name),
                conf if name == 'rbd' else None)
            os.makedirs(server.folder)
            servers.append(server)
            server.start()
            image = upload(server.url, source)
            stores.append(Store(name, server, image,
                                cluster if name == 'rbd' else None))
        os.unlink(source)
        export_allocated = None
        if conf is not None:
            rbd_store = next(s for s in stores if s.name == 'rbd')
            export_allocated = rbd_export_allocated(rbd_store, folder, conf)
            print('rbd-export of the rbd store\'s image: %d MB allocated'
                  % (export_allocated / 1e6), flush=True)
        measure(stores, folder, args.repeat, export_allocated)
    finally:
        for server in servers:
            server.stop()
        if cluster is not None:
            subprocess.run([rbd_export.SCRIPT, 'stop', cluster], check=False,
                           env=rbd_export._env())


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == '--child':
        child(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--stores', default='fs,rbd',
                        help='Glance stores to measure: fs, rbd (needs '
                             'Ceph) or both (default)')
    parser.add_argument('--dir', help='work folder (default: a new one in '
                                      '/var/tmp, removed at the end)')
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix='precache-glance-bench-',
                                          dir='/var/tmp')
    try:
        run(args, folder)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
