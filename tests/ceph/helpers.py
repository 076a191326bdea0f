"""Real single-node Ceph clusters for tests: start, images, users, faults.

A :class:`CephCluster` is a folder managed by ``tools/ceph-cluster`` (one
monitor, one OSD on a sparse file, cephx, 127.0.0.1 only, pools ``images``
and ``vms``). Images are made the way Glance's RBD store makes them: an
RBD image named by the image id in ``images`` with a protected snapshot
``snap``, location ``rbd://<fsid>/images/<id>/snap``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import uuid
from concurrent import futures
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, 'tools', 'ceph-cluster')
MiB = 1024 * 1024
OBJECT = 4 * MiB


def _env() -> dict[str, str]:
    # NOTE: CEPH_ARGS must never reach the daemons; keep it off the CLI too.
    return {k: v for k, v in os.environ.items() if k != 'CEPH_ARGS'}


def missing_requirements() -> str | None:
    """Why real-Ceph tests cannot run here, or None."""
    for command in ('ceph-mon', 'ceph-osd', 'ceph', 'rbd'):
        if not shutil.which(command):
            return '%s not installed (tools/test installs ceph-mon, ' \
                'ceph-osd, ceph-common)' % command
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError as exc:
        return 'rados/rbd not importable in this venv (%s); tools/test ' \
            'links them in' % exc
    return None


@dataclasses.dataclass
class RbdImage:
    """An image in the cluster as Glance would have it, with what a test
    needs to check a copy of it."""

    id: str
    pool: str
    size: int
    md5: str
    sha512: str
    data_bytes: int         # non-zero bytes
    allocated_bytes: int    # extents RBD reports allocated (incl. zeros)
    location: str
    disk_format: str = 'raw'

    def spec(self, **overrides: Any) -> Any:
        from precache import objects

        fields = {'id': self.id, 'size': self.size, 'name': self.id[:8],
                  'disk_format': self.disk_format, 'checksum': self.md5,
                  'os_hash_algo': 'sha512', 'os_hash_value': self.sha512,
                  'locations': (self.location,)}
        fields.update(overrides)
        return objects.ImageSpec(**fields)

    def catalog_entry(self, **overrides: Any) -> dict[str, Any]:
        """The image as Glance's API (and the local catalog) shows it."""
        return {'id': self.id, 'name': self.id[:8], 'status': 'active',
                'size': self.size, 'disk_format': self.disk_format,
                'container_format': 'bare', 'checksum': self.md5,
                'os_hash_algo': 'sha512', 'os_hash_value': self.sha512,
                'locations': [{'url': self.location, 'metadata': {}}],
                'direct_url': self.location, **overrides}


class CephCluster:
    """One cluster started by tools/ceph-cluster in ``folder``."""

    def __init__(self, name: str, folder: str) -> None:
        self.name = name
        self.folder = folder
        self.conf = os.path.join(folder, 'ceph.conf')
        self.fsid = ''
        self._client: Any = None

    # -- life --

    def start(self, size: str = '20G') -> CephCluster:
        done = subprocess.run([SCRIPT, 'start', self.folder, '--size', size],
                              capture_output=True, text=True, timeout=180,
                              env=_env(), check=False)
        if done.returncode:
            raise RuntimeError('ceph-cluster start failed: %s%s'
                               % (done.stdout, done.stderr))
        values = dict(line.split('=', 1)
                      for line in done.stdout.splitlines() if '=' in line)
        assert values['CEPH_CONF'] == self.conf, values
        self.fsid = values['CEPH_FSID']
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.shutdown()
            self._client = None
        subprocess.run([SCRIPT, 'stop', self.folder], timeout=120,
                       env=_env(), check=False)

    def pids(self) -> dict[str, int | None]:
        done = subprocess.run([SCRIPT, 'status', self.folder],
                              capture_output=True, text=True, timeout=30,
                              env=_env(), check=True)
        found: dict[str, int | None] = {}
        for line in done.stdout.splitlines():
            daemon, pid = line.split()
            found[daemon] = None if pid == 'stopped' else int(pid)
        return found

    # -- clients --

    def client(self) -> Any:
        """An admin librados connection of the test itself."""
        import rados

        if self._client is None:
            self._client = rados.Rados(conffile=self.conf,
                                       conf={'rados_osd_op_timeout': '30'})
            self._client.connect(timeout=10)
        return self._client

    def cli(self, *args: str, timeout: float = 120) -> str:
        """``ceph`` or ``rbd`` (first argument) against this cluster."""
        done = subprocess.run([args[0], '--conf', self.conf, *args[1:]],
                              capture_output=True, text=True,
                              timeout=timeout, env=_env(), check=False)
        if done.returncode:
            raise RuntimeError('%s failed: %s' % (' '.join(args),
                                                  done.stderr.strip()))
        return done.stdout

    def add_user(self, user: str, *caps: str) -> str:
        """A cephx user with these caps; its keyring's path."""
        keyring = os.path.join(self.folder, 'ceph.client.%s.keyring' % user)
        out = self.cli('ceph', 'auth', 'get-or-create', 'client.' + user,
                       *caps)
        with open(keyring, 'w') as stream:
            stream.write(out)
        return keyring

    def osd_counters(self) -> dict[str, int]:
        """The OSD's client op counters (``perf dump``, section osd)."""
        asok = os.path.join(self.folder, 'run', 'ceph-osd.0.asok')
        out = self.cli('ceph', '--admin-daemon', asok, 'perf', 'dump')
        osd = json.loads(out)['osd']
        return {key: osd[key] for key in ('op_r', 'op_out_bytes', 'op_w',
                                          'op_in_bytes')}

    # -- images --

    def make_image(self, size: int, *, pool: str = 'images',
                   seed: int = 0, image_id: str | None = None,
                   pattern: str = 'mixed') -> RbdImage:
        """An image of ``size`` bytes (a multiple of 4 MiB) as Glance's
        RBD store leaves it, with holes, zero runs and partial objects.

        Per 4 MiB object, by ``pattern`` ``mixed``: ~45% random data, ~15%
        written zeros (allocated zero runs), ~10% 1 MiB of data in the
        middle of a hole, the rest holes; the first object is data.
        """
        import rbd

        assert size % OBJECT == 0
        image_id = image_id or str(uuid.uuid4())
        rng = random.Random(seed)
        ioctx = self.client().open_ioctx(pool)
        md5, sha512 = hashlib.md5(), hashlib.sha512()  # noqa: S324
        zeros = bytes(OBJECT)
        writes: list[tuple[int, bytes]] = []
        data_bytes = allocated = 0
        try:
            rbd.RBD().create(ioctx, image_id, size, old_format=False)
            with rbd.Image(ioctx, image_id) as image, \
                    futures.ThreadPoolExecutor(8) as pool_:
                for offset in range(0, size, OBJECT):
                    pick = rng.random() if offset else 0.0
                    if pattern != 'mixed' or pick < 0.45:
                        block = rng.randbytes(OBJECT)
                        writes.append((offset, block))
                        data_bytes += OBJECT
                        allocated += OBJECT
                    elif pick < 0.60:
                        block = zeros
                        writes.append((offset, zeros))
                        allocated += OBJECT
                    elif pick < 0.70:
                        piece = rng.randbytes(MiB)
                        writes.append((offset + MiB, piece))
                        block = bytes(MiB) + piece + bytes(2 * MiB)
                        data_bytes += MiB
                        allocated += MiB
                    else:
                        block = zeros
                    md5.update(block)
                    sha512.update(block)
                    if len(writes) >= 16:
                        list(pool_.map(lambda w: image.write(w[1], w[0]),
                                       writes))
                        writes = []
                list(pool_.map(lambda w: image.write(w[1], w[0]), writes))
                image.flush()
                image.create_snap('snap')
                image.protect_snap('snap')
        finally:
            ioctx.close()
        return RbdImage(id=image_id, pool=pool, size=size,
                        md5=md5.hexdigest(), sha512=sha512.hexdigest(),
                        data_bytes=data_bytes, allocated_bytes=allocated,
                        location='rbd://%s/%s/%s/snap' % (self.fsid, pool,
                                                          image_id))

    def import_file(self, path: str, disk_format: str,
                    pool: str = 'images') -> RbdImage:
        """An image whose bytes are the file at ``path`` (e.g. a qcow2)."""
        image_id = str(uuid.uuid4())
        self.cli('rbd', 'import', '--dest-pool', pool, path, image_id)
        self.cli('rbd', 'snap', 'create', '%s/%s@snap' % (pool, image_id))
        self.cli('rbd', 'snap', 'protect', '%s/%s@snap' % (pool, image_id))
        md5, sha512 = hashlib.md5(), hashlib.sha512()  # noqa: S324
        with open(path, 'rb') as stream:
            while chunk := stream.read(MiB):
                md5.update(chunk)
                sha512.update(chunk)
        size = os.path.getsize(path)
        return RbdImage(id=image_id, pool=pool, size=size,
                        md5=md5.hexdigest(), sha512=sha512.hexdigest(),
                        data_bytes=0, allocated_bytes=0,
                        location='rbd://%s/%s/%s/snap' % (self.fsid, pool,
                                                          image_id),
                        disk_format=disk_format)

    def delete_image(self, pool: str, name: str) -> None:
        """Remove an image and its snapshots (as Glance deletes one)."""
        import rbd

        ioctx = self.client().open_ioctx(pool)
        try:
            with rbd.Image(ioctx, name) as image:
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap['name']):
                        image.unprotect_snap(snap['name'])
                    image.remove_snap(snap['name'])
            rbd.RBD().remove(ioctx, name)
        finally:
            ioctx.close()

    def images(self, pool: str) -> list[str]:
        import rbd

        ioctx = self.client().open_ioctx(pool)
        try:
            return sorted(rbd.RBD().list(ioctx))
        finally:
            ioctx.close()

    def read_image(self, pool: str, name: str,
                   snapshot: str | None = None) -> tuple[str, int]:
        """(sha512 of the logical bytes, allocated bytes) of an image."""
        import rbd

        ioctx = self.client().open_ioctx(pool)
        try:
            with rbd.Image(ioctx, name, snapshot=snapshot,
                           read_only=True) as image:
                size = image.size()
                digest = hashlib.sha512()
                for offset in range(0, size, OBJECT):
                    digest.update(image.read(offset,
                                             min(OBJECT, size - offset)))
                extents: list[int] = []
                image.diff_iterate(0, size, None,
                                   lambda o, n, e: extents.append(n)
                                   if e else None)
                return digest.hexdigest(), sum(extents)
        finally:
            ioctx.close()

    def image_info(self, pool: str, name: str) -> dict[str, Any]:
        return json.loads(self.cli('rbd', 'info', '--format', 'json',
                                   '%s/%s' % (pool, name)))

    def metadata(self, pool: str, name: str) -> dict[str, str]:
        import rbd

        ioctx = self.client().open_ioctx(pool)
        try:
            with rbd.Image(ioctx, name, read_only=True) as image:
                return dict(image.metadata_list())
        finally:
            ioctx.close()


def allocated_bytes(path: str) -> int:
    return os.stat(path).st_blocks * 512


def sha512_file(path: str) -> str:
    digest = hashlib.sha512()
    with open(path, 'rb') as stream:
        while chunk := stream.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()
