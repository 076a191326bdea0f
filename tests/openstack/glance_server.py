"""A real Glance for tests: its own venv, SQLite, gunicorn; file and rbd.

The venv (``pip install glance gunicorn``, ~60-70 s) is built once into
``$PRECACHE_TEST_CACHE`` (default /var/cache/precache-test) and reused by
every run; it is built under a temporary name and renamed when complete,
so an interrupted build is never used. Debian's ``rados``/``rbd`` modules
are linked into it by a ``.pth`` file (as tools/test does for the
project's venv: a venv of another Python build does not see them), which
Glance's rbd store needs; that step runs on every use, so a venv built
before it existed is upgraded in place.

A :class:`GlanceServer` has the filesystem store ``fs``; given a Ceph
conf it also has the rbd store ``ceph`` (Glance multi-store), which then
takes uploads: image ``<id>`` in pool ``images`` with a protected
snapshot ``snap``, location ``rbd://<fsid>/images/<id>/snap``. Without
``keystone`` it runs without authentication (``[paste_deploy] flavor =``
and a policy making everybody admin), which is what ``auth_type`` unset +
``endpoint_override`` in ``[glance]`` talks to; with it, behind
keystonemiddleware with Glance's default policies. Run ``python -m
tests.openstack.glance_server`` to pre-build the venv.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import requests

GLANCE_REQUIREMENT = 'glance==33.0.0'
CACHE_DIR = os.environ.get('PRECACHE_TEST_CACHE', '/var/cache/precache-test')
VENV = os.path.join(CACHE_DIR, 'glance-33.0.0')
DEBIAN_DIST_PACKAGES = '/usr/lib/python3/dist-packages'

# NOTE: the measured fix for "database is locked" under parallel uploads:
# take SQLite's write lock when a transaction begins (oslo.db's own BEGIN
# is suppressed by its marker), queue on the URL's timeout.
WSGI_MODULE = '''\
from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, 'begin')
def _begin_immediate(conn):
    # NOTE: oslo.db emits its own BEGIN unless this marker is set.
    if conn.dialect.name == 'sqlite' and 'in_transaction' not in conn.info:
        conn.exec_driver_sql('BEGIN IMMEDIATE')
        conn.info['in_transaction'] = True


from glance.wsgi.api import application  # noqa: E402,F401
'''


def _python() -> str:
    return os.path.join(VENV, 'bin', 'python')


def ensure_venv() -> str:
    """The Glance venv, built on first use (about a minute), with
    Debian's rados and rbd linked in."""
    if not os.path.exists(os.path.join(VENV, '.complete')):
        _build_venv()
    link_ceph_modules(VENV)
    return VENV


def _replace_file(path: str, text: str) -> None:
    """Write ``path`` atomically unless it already holds ``text``."""
    with contextlib.suppress(OSError):
        with open(path) as stream:
            if stream.read() == text:
                return
    temporary = '%s.%d' % (path, os.getpid())
    with open(temporary, 'w') as stream:
        stream.write(text)
    os.replace(temporary, path)


def link_ceph_modules(venv: str) -> list[str]:
    """Make Debian's ``rados`` and ``rbd`` importable in ``venv``.

    Idempotent and safe to run concurrently; the modules linked (none
    when python3-rados/python3-rbd are not installed: Glance's rbd store
    then stays disabled and the tests that need it say so).
    """
    python = os.path.join(venv, 'bin', 'python')
    suffix, purelib = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_config_var('
         '"EXT_SUFFIX")); print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.split()
    folder = os.path.join(venv, 'system-ceph')
    os.makedirs(folder, exist_ok=True)
    linked = []
    for module in ('rados', 'rbd'):
        target = os.path.join(DEBIAN_DIST_PACKAGES, module + suffix)
        if not os.path.exists(target):
            continue
        link = os.path.join(folder, module + suffix)
        if os.path.realpath(link) != target:
            temporary = '%s.%d' % (link, os.getpid())
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            os.symlink(target, temporary)
            os.replace(temporary, link)
        linked.append(module)
    _replace_file(os.path.join(purelib, 'precache-system-ceph.pth'),
                  folder + '\n')
    return linked


def _build_venv() -> None:
    os.makedirs(CACHE_DIR, exist_ok=True)
    building = '%s.building-%d' % (VENV, os.getpid())
    shutil.rmtree(building, ignore_errors=True)
    python = getattr(sys, '_base_executable', None) or sys.executable
    subprocess.run([python, '-m', 'venv', building], check=True)
    env = dict(os.environ, PIP_CACHE_DIR=os.path.join(CACHE_DIR, 'pip'),
               PIP_DISABLE_PIP_VERSION_CHECK='1')
    subprocess.run([os.path.join(building, 'bin', 'python'), '-m', 'pip',
                    'install', '-q', GLANCE_REQUIREMENT, 'gunicorn'],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    open(os.path.join(building, '.complete'), 'w').close()
    # NOTE: console scripts keep the build path in their shebang, so
    # everything is run as "bin/python -m ..." instead.
    try:
        os.rename(building, VENV)
    except OSError:  # another run finished first
        shutil.rmtree(building, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class KeystoneAuth:
    """Where keystonemiddleware validates tokens, and as whom."""

    auth_url: str
    username: str
    password: str
    project_name: str = 'service'
    domain_id: str = 'default'


class GlanceServer:
    """One Glance API process on 127.0.0.1 with its own state folder.

    ``ceph_conf``: also the rbd store (pool ``images`` of that cluster,
    as client.admin), the default one for uploads. ``keystone``: tokens
    required, validated there.
    """

    def __init__(self, folder: str, ceph_conf: str | None = None,
                 keystone: KeystoneAuth | None = None) -> None:
        self.folder = folder
        self.ceph_conf = ceph_conf
        self.keystone = keystone
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.process: subprocess.Popen | None = None

    def _auth_config(self) -> str:
        paste = os.path.join(VENV, 'etc', 'glance', 'glance-api-paste.ini')
        if self.keystone is None:
            return '[paste_deploy]\nflavor =\nconfig_file = %s\n' % paste
        auth = self.keystone
        return f'''[paste_deploy]
flavor = keystone
config_file = {paste}
[keystone_authtoken]
www_authenticate_uri = {auth.auth_url}
auth_url = {auth.auth_url}
auth_type = password
username = {auth.username}
password = {auth.password}
project_name = {auth.project_name}
user_domain_id = {auth.domain_id}
project_domain_id = {auth.domain_id}
'''

    def _store_config(self) -> str:
        images = os.path.join(self.folder, 'images')
        if self.ceph_conf is None:
            return f'''[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {images}
'''
        return f'''[glance_store]
default_backend = ceph
[fs]
filesystem_store_datadir = {images}
[ceph]
rbd_store_pool = images
rbd_store_user = admin
rbd_store_ceph_conf = {self.ceph_conf}
rbd_store_chunk_size = 8
'''

    def _write_config(self) -> None:
        join = os.path.join
        for sub in ('images', 'staging', 'tasks', 'etc', 'home'):
            os.makedirs(join(self.folder, sub), exist_ok=True)
        backends = 'fs:file' if self.ceph_conf is None else \
            'fs:file, ceph:rbd'
        with open(join(self.folder, 'etc', 'glance-api.conf'), 'w') as f:
            f.write(f'''[DEFAULT]
show_image_direct_url = True
show_multiple_locations = True
enabled_backends = {backends}
log_file = {join(self.folder, 'glance-api.log')}
use_stderr = False
worker_self_reference_url = {self.url}
[database]
connection = sqlite:///{join(self.folder, 'glance.sqlite')}?timeout=30
[oslo_policy]
policy_file = {join(self.folder, 'etc', 'policy.yaml')}
[os_glance_staging_store]
filesystem_store_datadir = {join(self.folder, 'staging')}
[os_glance_tasks_store]
filesystem_store_datadir = {join(self.folder, 'tasks')}
''' + self._auth_config() + self._store_config())
        with open(join(self.folder, 'etc', 'policy.yaml'), 'w') as f:
            # NOTE: without Keystone every request is anonymous; with it,
            # Glance's default rules decide (owner, members, admin).
            f.write('"context_is_admin": "@"\n' if self.keystone is None
                    else '{}\n')
        with open(join(self.folder, 'precache_glance_wsgi.py'), 'w') as f:
            f.write(WSGI_MODULE)

    def _env(self) -> dict[str, str]:
        # NOTE: a CEPH_ARGS of the test run would reach librados in Glance.
        env = {k: v for k, v in os.environ.items() if k != 'CEPH_ARGS'}
        return dict(env,
                    OS_GLANCE_CONFIG_DIR=os.path.join(self.folder, 'etc'),
                    HOME=os.path.join(self.folder, 'home'),
                    XDG_CACHE_HOME=os.path.join(self.folder, 'home'),
                    PYTHONPATH=self.folder)

    def _check_ceph_modules(self) -> None:
        done = subprocess.run([_python(), '-c', 'import rados, rbd'],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(
                "Glance's rbd store needs rados and rbd in %s (Debian's "
                "python3-rados and python3-rbd, which tools/test installs): "
                '%s' % (VENV, done.stderr.strip().splitlines()[-1:]))

    def start(self, timeout: float = 60.0) -> None:
        if self.ceph_conf is not None:
            self._check_ceph_modules()
        self._write_config()
        conf = os.path.join(self.folder, 'etc', 'glance-api.conf')
        subprocess.run(
            [_python(), '-m', 'glance.cmd.manage', '--config-file', conf,
             'db_sync'], check=True, env=self._env(),
            capture_output=True, timeout=120)
        log = open(os.path.join(self.folder, 'gunicorn.log'), 'ab')
        self.process = subprocess.Popen(
            [_python(), '-m', 'gunicorn', '--bind',
             '127.0.0.1:%d' % self.port, '--workers', '1',
             '--worker-class', 'gthread', '--threads', '8',
             '--timeout', '300', '--no-control-socket',
             'precache_glance_wsgi:application'],
            cwd=self.folder, env=self._env(), stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('Glance exited; see %s/gunicorn.log and '
                                   'glance-api.log' % self.folder)
            # NOTE: /versions needs no token, with Keystone or without.
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + '/versions',
                                            timeout=2) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError('Glance did not answer within %ds' % timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class Images:
    """Creates images in a test Glance; remembers their bytes.

    ``token``: the Keystone token of the user acting (a Glance behind
    Keystone), else anonymous.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = {'X-Auth-Token': token} if token else {}
        self.data: dict[str, bytes] = {}

    def create(self, data: bytes | None, name: str = 'test',
               **extra: Any) -> dict[str, Any]:
        answer = requests.post(
            self.url + '/v2/images', timeout=30, headers=self.headers,
            json={'name': name, 'disk_format': 'raw',
                  'container_format': 'bare', **extra})
        answer.raise_for_status()
        image = answer.json()
        if data is not None:
            requests.put(self.url + '/v2/images/%s/file' % image['id'],
                         data=data, timeout=120,
                         headers={**self.headers, 'Content-Type':
                                  'application/octet-stream'}
                         ).raise_for_status()
            self.data[image['id']] = data
        return self.get(image['id'])

    def get(self, image_id: str) -> dict[str, Any]:
        answer = requests.get(self.url + '/v2/images/' + image_id,
                              headers=self.headers, timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def delete(self, image_id: str) -> None:
        requests.delete(self.url + '/v2/images/' + image_id,
                        headers=self.headers, timeout=30).raise_for_status()

    def share(self, image_id: str, project_id: str) -> None:
        """Make ``project_id`` a member (pending) of a shared image."""
        requests.post(self.url + '/v2/images/%s/members' % image_id,
                      json={'member': project_id}, headers=self.headers,
                      timeout=30).raise_for_status()


def random_bytes(size: int, seed: str = 'x') -> bytes:
    """Incompressible, reproducible bytes."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha512(b'%s-%d' % (seed.encode(), counter)).digest()
        counter += 1
    return bytes(out[:size])


@contextlib.contextmanager
def running(folder: str, ceph_conf: str | None = None,
            keystone: KeystoneAuth | None = None
            ) -> Iterator[GlanceServer]:
    ensure_venv()
    server = GlanceServer(folder, ceph_conf, keystone)
    server.start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == '__main__':
    print('%s (linked: %s)' % (ensure_venv(),
                               ', '.join(link_ceph_modules(VENV)) or 'none'))
