"""A real Keystone (30.x from PyPI) for the API tests.

Built once per machine under the tests' cache folder
(``$PRECACHE_TEST_CACHE``, default ``/var/cache/precache-test``, shared
with tests/openstack): a venv with ``keystone`` and
``gunicorn`` (~40-70 s), then a *template*: a bootstrapped SQLite database
with fernet and credential keys, a service user for keystonemiddleware and
the test users (~20 s). Each test session copies the template, starts
gunicorn on a free port (~3 s) and points the catalog at that port.

``python -m tests.api.keystone`` builds both ahead of time (tools/test).
Measured facts this relies on: ../shared/DESIGN.md §5.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import requests

KEYSTONE = 'keystone==30.0.0'
GUNICORN = 'gunicorn'
REGION = 'RegionOne'
DOMAIN = 'default'
ADMIN_PASSWORD = 'admin-test-password'

#: name → (project, role, password). Roles imply: admin → member → reader.
USERS = {
    'precache': ('service', 'service', 'precache-test-password'),
    'reader': ('demo', 'reader', 'reader-test-password'),
    'member': ('demo', 'member', 'member-test-password'),
    'observer': ('demo', 'observer', 'observer-test-password'),
    'operator': ('demo', 'admin', 'operator-test-password'),
}

WSGI_MODULE = '''\
import sys
# NOTE: keystone parses sys.argv with oslo.config; gunicorn's would fail.
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
'''


def cache_dir() -> str:
    return os.environ.get('PRECACHE_TEST_CACHE') or \
        '/var/cache/precache-test'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(*args: str, env: dict[str, str] | None = None,
         timeout: float = 600) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError('%s failed (%d): %s' % (
            ' '.join(args[:3]), done.returncode,
            (done.stderr or done.stdout)[-2000:]))


def ensure_venv() -> str:
    """The venv with keystone and gunicorn; built unless present."""
    root = cache_dir()
    venv = os.path.join(root, 'keystone-venv')
    marker = os.path.join(venv, '.complete')
    with _locked(os.path.join(root, 'keystone.lock')):
        if os.path.exists(marker):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        python = getattr(sys, '_base_executable', sys.executable)
        _run(python, '-m', 'venv', venv)
        env = {**os.environ, 'PIP_CACHE_DIR': os.path.join(root, 'pip'),
               'PIP_DISABLE_PIP_VERSION_CHECK': '1'}
        _run(os.path.join(venv, 'bin', 'pip'), 'install', '-q', KEYSTONE,
             GUNICORN, env=env, timeout=900)
        with open(marker, 'w') as out:
            out.write(KEYSTONE + '\n')
        return venv


def _write_conf(state: str) -> str:
    conf = os.path.join(state, 'keystone.conf')
    with open(conf, 'w') as out:
        out.write(f'''[DEFAULT]
log_file = {state}/keystone.log
[database]
connection = sqlite:///{state}/keystone.sqlite
[fernet_tokens]
key_repository = {state}/fernet
[credential]
key_repository = {state}/credential
[token]
provider = fernet
[identity]
# NOTE: test-only; bcrypt's default cost makes every login ~0.3 s.
password_hash_rounds = 4
''')
    with open(os.path.join(state, 'wsgi_keystone.py'), 'w') as out:
        out.write(WSGI_MODULE)
    return conf


class Keystone:
    """A running Keystone: its URL, its users, tokens and sessions."""

    def __init__(self, venv: str, state: str) -> None:
        self.venv = venv
        self.state = state
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d/v3' % self.port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        conf = _write_conf(self.state)
        env = {**os.environ, 'OS_KEYSTONE_CONFIG_FILES': conf,
               'XDG_CACHE_HOME': os.path.join(self.state, 'xdg')}
        env.pop('OS_AUTH_URL', None)
        log = open(os.path.join(self.state, 'gunicorn.log'), 'ab')
        self.process = subprocess.Popen(
            [os.path.join(self.venv, 'bin', 'gunicorn'),
             '--no-control-socket', '--worker-class', 'gthread',
             '--threads', '8', '--workers', '1',
             '--bind', '127.0.0.1:%d' % self.port,
             '--chdir', self.state, 'wsgi_keystone:application'],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError('keystone exited: see %s/gunicorn.log'
                                   % self.state)
            try:
                if requests.get(self.url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError('keystone not ready after %ds' % timeout)
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # NOTE: SIGINT is gunicorn's quick stop; SIGTERM waits for
            # idle keep-alive connections.
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    # -- identity ---------------------------------------------------------

    def password(self, user: str) -> str:
        return ADMIN_PASSWORD if user == 'admin' else USERS[user][2]

    def project(self, user: str) -> str:
        return 'admin' if user == 'admin' else USERS[user][0]

    def token(self, user: str = 'admin') -> str:
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': user, 'domain': {'id': DOMAIN},
                'password': self.password(user)}}},
            'scope': {'project': {'name': self.project(user),
                                  'domain': {'id': DOMAIN}}}}}
        resp = requests.post(self.url + '/auth/tokens', json=body,
                             timeout=30)
        resp.raise_for_status()
        return resp.headers['X-Subject-Token']

    def auth_args(self, user: str = 'admin') -> dict[str, str]:
        """keystoneauth password-plugin arguments for ``user``."""
        return {'auth_url': self.url, 'username': user,
                'password': self.password(user),
                'project_name': self.project(user),
                'user_domain_id': DOMAIN, 'project_domain_id': DOMAIN}

    def session(self, user: str = 'admin') -> Any:
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
        return session.Session(auth=v3.Password(**self.auth_args(user)))

    def _api(self, method: str, path: str, token: str,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = requests.request(method, self.url + path, json=body,
                                headers={'X-Auth-Token': token},
                                timeout=30)
        if resp.status_code >= 400:
            raise RuntimeError('%s %s: %d %s' % (method, path,
                                                 resp.status_code,
                                                 resp.text[:500]))
        return resp.json() if resp.content else {}

    def _find(self, token: str, kind: str, name: str) -> str | None:
        found = self._api('GET', '/%s?name=%s' % (kind, name), token)[kind]
        return found[0]['id'] if found else None

    def _ensure(self, token: str, kind: str, name: str,
                body: dict[str, Any]) -> str:
        existing = self._find(token, kind, name)
        if existing:
            return existing
        return self._api('POST', '/' + kind, token,
                         {kind[:-1]: body})[kind[:-1]]['id']

    def create_test_identities(self) -> None:
        token = self.token('admin')
        for user, (project, role, password) in USERS.items():
            project_id = self._ensure(token, 'projects', project, {
                'name': project, 'domain_id': DOMAIN})
            role_id = self._ensure(token, 'roles', role, {'name': role})
            user_id = self._ensure(token, 'users', user, {
                'name': user, 'domain_id': DOMAIN, 'password': password})
            self._api('PUT', '/projects/%s/users/%s/roles/%s'
                      % (project_id, user_id, role_id), token)

    def point_catalog_here(self) -> None:
        """Identity endpoints at this run's port (the template had one)."""
        token = self.token('admin')
        for endpoint in self._api('GET', '/endpoints', token)['endpoints']:
            if ':%d/' % self.port not in endpoint['url'] and \
                    endpoint['url'].endswith('/v3'):
                self._api('PATCH', '/endpoints/%s' % endpoint['id'], token,
                          {'endpoint': {'url': self.url}})

    def register_service(self, service_type: str, name: str,
                         url: str) -> None:
        """A service and its public + internal endpoints in the catalog."""
        token = self.token('admin')
        service_id = self._ensure(token, 'services', name, {
            'type': service_type, 'name': name})
        for interface in ('public', 'internal'):
            self._api('POST', '/endpoints', token, {'endpoint': {
                'service_id': service_id, 'interface': interface,
                'region_id': REGION, 'url': url}})


def ensure_template() -> tuple[str, str]:
    """(venv, template folder): bootstrapped state, built unless present."""
    venv = ensure_venv()
    root = cache_dir()
    template = os.path.join(root, 'keystone-template')
    marker = os.path.join(template, '.complete')
    with _locked(os.path.join(root, 'keystone-template.lock')):
        if os.path.exists(marker):
            return venv, template
        shutil.rmtree(template, ignore_errors=True)
        os.makedirs(template)
        conf = _write_conf(template)
        manage = os.path.join(venv, 'bin', 'keystone-manage')
        env = {**os.environ, 'OS_KEYSTONE_CONFIG_FILES': conf}
        _run(manage, '--config-file', conf, 'db_sync', env=env)
        for what in ('fernet_setup', 'credential_setup'):
            _run(manage, '--config-file', conf, what, '--keystone-user',
                 'root', '--keystone-group', 'root', env=env)
        keystone = Keystone(venv, template)
        _run(manage, '--config-file', conf, 'bootstrap',
             '--bootstrap-password', ADMIN_PASSWORD,
             '--bootstrap-region-id', REGION,
             '--bootstrap-public-url', keystone.url,
             '--bootstrap-internal-url', keystone.url, env=env)
        keystone.start()
        try:
            keystone.create_test_identities()
        finally:
            keystone.stop()
        for name in ('keystone.log', 'gunicorn.log'):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(template, name))
        with open(marker, 'w') as out:
            json.dump({'users': sorted(USERS)}, out)
        return venv, template


def start(state: str) -> Keystone:
    """A Keystone of its own in ``state`` (a fresh copy of the template)."""
    venv, template = ensure_template()
    shutil.copytree(template, state, dirs_exist_ok=True)
    os.chmod(os.path.join(state, 'fernet'), 0o700)
    keystone = Keystone(venv, state)
    keystone.start()
    try:
        keystone.point_catalog_here()
    except Exception:
        keystone.stop()
        raise
    return keystone


if __name__ == '__main__':
    started = time.monotonic()
    print('keystone venv and template: %s' % (ensure_template(),))
    print('ready in %.1fs' % (time.monotonic() - started))
