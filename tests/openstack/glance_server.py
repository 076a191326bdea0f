"""A real Glance for tests: its own venv, SQLite, filesystem store, gunicorn.

The venv (``pip install glance gunicorn``, ~60-70 s) is built once into
``$PRECACHE_TEST_CACHE`` (default /var/cache/precache-test) and reused by
every run; it is built under a temporary name and renamed when complete,
so an interrupted build is never used. Glance runs without Keystone
(``[paste_deploy] flavor =`` and a policy making everybody admin), which
is what ``auth_type`` unset + ``endpoint_override`` in ``[glance]`` talks
to. Run ``python -m tests.openstack.glance_server`` to pre-build the venv.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

GLANCE_REQUIREMENT = 'glance==33.0.0'
CACHE_DIR = os.environ.get('PRECACHE_TEST_CACHE', '/var/cache/precache-test')
VENV = os.path.join(CACHE_DIR, 'glance-33.0.0')

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
    """The Glance venv, built on first use (about a minute)."""
    if os.path.exists(os.path.join(VENV, '.complete')):
        return VENV
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
    return VENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


class GlanceServer:
    """One Glance API process on 127.0.0.1 with its own state folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> None:
        join = os.path.join
        for sub in ('images', 'staging', 'tasks', 'etc', 'home'):
            os.makedirs(join(self.folder, sub), exist_ok=True)
        paste = join(VENV, 'etc', 'glance', 'glance-api-paste.ini')
        with open(join(self.folder, 'etc', 'glance-api.conf'), 'w') as f:
            f.write(f'''[DEFAULT]
show_image_direct_url = True
show_multiple_locations = True
enabled_backends = fs:file
log_file = {join(self.folder, 'glance-api.log')}
use_stderr = False
worker_self_reference_url = {self.url}
[database]
connection = sqlite:///{join(self.folder, 'glance.sqlite')}?timeout=30
[paste_deploy]
flavor =
config_file = {paste}
[oslo_policy]
policy_file = {join(self.folder, 'etc', 'policy.yaml')}
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {join(self.folder, 'images')}
[os_glance_staging_store]
filesystem_store_datadir = {join(self.folder, 'staging')}
[os_glance_tasks_store]
filesystem_store_datadir = {join(self.folder, 'tasks')}
''')
        with open(join(self.folder, 'etc', 'policy.yaml'), 'w') as f:
            f.write('"context_is_admin": "@"\n')
        with open(join(self.folder, 'precache_glance_wsgi.py'), 'w') as f:
            f.write(WSGI_MODULE)

    def _env(self) -> dict[str, str]:
        return dict(os.environ,
                    OS_GLANCE_CONFIG_DIR=os.path.join(self.folder, 'etc'),
                    HOME=os.path.join(self.folder, 'home'),
                    XDG_CACHE_HOME=os.path.join(self.folder, 'home'),
                    PYTHONPATH=self.folder)

    def start(self, timeout: float = 60.0) -> None:
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
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + '/v2/images',
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


@contextlib.contextmanager
def running(folder: str) -> Iterator[GlanceServer]:
    ensure_venv()
    server = GlanceServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == '__main__':
    print(ensure_venv())
