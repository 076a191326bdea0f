"""The API tests' world: real RabbitMQ, a real Keystone, real servers.

Started once for the tests/api package and stopped after its last test:

- ``world``: a conductor and three agents in this process over a RabbitMQ
  vhost of its own, a SQLite job store, a local image catalog and a
  static inventory (aggregates ``api-all`` of 3 hosts in 2 cells,
  ``api-one``, ``api-empty``);
- ``noauth``: the API application built in this process with ``noauth``,
  served by precache-api's own threaded server on a free port;
- ``keystone``: Keystone 30 under gunicorn (see keystone.py);
- ``api``: the ``precache-api`` console script as a process, with
  keystonemiddleware validating tokens against that Keystone and the
  compute endpoint registered in its catalog.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest
import requests

from precache import objects, rpc
from precache.api import app as api_app
from precache.cmd import api as api_cmd
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from tests.api import keystone as keystone_mod
from tests.fixtures import Layout, LocalServices, random_bytes, write_conf

BIN = os.path.dirname(os.path.abspath(sys.executable))
CELLS = {'cell-a': ['api-h1', 'api-h2'], 'cell-b': ['api-h3']}
HOSTS = [host for hosts in CELLS.values() for host in hosts]
AGGREGATE_UUID = '5d8e4c1a-3f4b-4e8e-9a3c-1f2e3d4c5b6a'
AGGREGATES = [
    {'id': 11, 'name': 'api-all', 'uuid': AGGREGATE_UUID, 'hosts': HOSTS},
    {'id': 12, 'name': 'api-one', 'hosts': ['api-h2'],
     'metadata': {'availability_zone': 'az-one'}},
    {'id': 13, 'name': 'api-empty', 'hosts': []},
]
LAYOUT = Layout(CELLS, AGGREGATES)


def _parse_conf() -> None:
    CONF([], project='precache', default_config_files=[])


@pytest.fixture(autouse=True)
def parsed_conf(conf: Any) -> None:
    """CONF as a service has it: parsed (the ``conf`` fixture's cleanup
    resets it, and oslo.policy looks for policy.yaml through it)."""
    _parse_conf()


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(['rabbitmqctl', '-q', *args], capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode:
        pytest.fail('rabbitmqctl %s failed (is RabbitMQ running? see '
                    'tools/test): %s' % (' '.join(args),
                                         done.stderr or done.stdout))


class World(LocalServices):
    """Conductor and agents over RabbitMQ, with images to cache
    (:class:`tests.fixtures.LocalServices`); its RPC client is ``rpc``."""

    def __init__(self, root: str, url: str) -> None:
        self.url = url
        super().__init__(root, rpc.get_transport(CONF, url), LAYOUT, HOSTS,
                         'api-conductor')
        self.images_dir = self.images.folder
        self.rpc = ConductorAPI(self.transport, timeout=15)

    def stop(self) -> None:
        """Stop and wait for every service at once (each takes ~1-4 s
        over RabbitMQ, mostly waiting for its poll to return)."""
        def one(service: Any) -> None:
            service.stop()
            service.wait()

        services = [self.conductor, *self.agents]
        with futures.ThreadPoolExecutor(len(services)) as pool:
            list(pool.map(one, services))

    def add_image(self, size: int = 64 * 1024, status: str = 'active',
                  **fields: Any) -> str:
        """A new image in the catalog, its file beside it; its id."""
        return self.images.add_image(random_bytes(size), status, **fields)

    def job_count(self) -> int:
        return len(self.store.list_jobs(limit=100000))

    def wait(self, job_id: str, timeout: float = 30) -> objects.Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.store.get_job(job_id)
            if job.state.is_final:
                return job
            assert time.monotonic() < deadline, 'job %s is still %s' % (
                job_id, job.state.value)
            time.sleep(0.05)


@pytest.fixture(scope='package')
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    vhost = 'precache-api-%s' % uuid.uuid4().hex[:12]
    rabbitmqctl('add_vhost', vhost)
    try:
        rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*',
                    '.*')
        world = World(str(tmp_path_factory.mktemp('world')),
                      'rabbit://guest:guest@127.0.0.1:5672/%s' % vhost)
        world.start()
        try:
            yield world
        finally:
            world.stop()
            world.store.close()
            rpc.cleanup()
    finally:
        rabbitmqctl('delete_vhost', vhost)


@dataclasses.dataclass
class Served:
    """An API reachable over HTTP, and how to call it."""

    url: str
    headers: dict[str, str]
    app: Any = None

    def request(self, method: str, path: str, **kwargs: Any
                ) -> requests.Response:
        headers = {**self.headers, **kwargs.pop('headers', {})}
        return requests.request(method, self.url + path, headers=headers,
                                timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('GET', path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('POST', path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('DELETE', path, **kwargs)


@pytest.fixture(scope='package')
def noauth(world: World) -> Iterator[Served]:
    """The application in this process, no auth, on the stdlib server."""
    _parse_conf()
    CONF.set_override('auth_strategy', 'noauth', group='api')
    try:
        application = api_app.build_app(lambda: world.rpc)
    finally:
        CONF.clear_override('auth_strategy', group='api')
    server = api_cmd.make_server(application, '127.0.0.1', 0, threads=16)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served('http://127.0.0.1:%d' % server.server_address[1], {},
                     application)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope='package')
def keystone(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[keystone_mod.Keystone]:
    server = keystone_mod.start(str(tmp_path_factory.mktemp('keystone')))
    try:
        yield server
    finally:
        server.stop()


@dataclasses.dataclass
class Process:
    url: str
    log: str
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        with open(self.log) as stream:
            return stream.read()


def start_process(args: list[str], log: str, url: str,
                  env: dict[str, str] | None = None,
                  timeout: float = 60) -> Process:
    with open(log + '.out', 'ab') as out:
        process = subprocess.Popen(args, stdout=out,
                                   stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})},
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            with open(log + '.out') as stream:
                output = stream.read()
            pytest.fail('%s exited %s: %s' % (args[0], process.returncode,
                                              output[-3000:]))
        try:
            if requests.get(url + '/', timeout=2).status_code == 200:
                return Process(url, log, process)
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, '%s not ready' % args[0]
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def api_conf(folder: str, world: World,
             keystone: keystone_mod.Keystone, port: int) -> str:
    return write_conf(os.path.join(folder, 'precache-api.conf'), {
        'DEFAULT': {'transport_url': world.url,
                    'log_file': os.path.join(folder, 'precache-api.log'),
                    'debug': 'false'},
        'api': {'host_ip': '127.0.0.1', 'port': port,
                'auth_strategy': 'keystone', 'rpc_timeout': 20},
        'keystone_authtoken': {
            'www_authenticate_uri': keystone.url,
            'auth_url': keystone.url, 'auth_type': 'password',
            'username': 'precache',
            'password': keystone.password('precache'),
            'project_name': 'service', 'user_domain_id': 'default',
            'project_domain_id': 'default', 'interface': 'public',
            'region_name': keystone_mod.REGION},
    })


@pytest.fixture(scope='package')
def api(tmp_path_factory: pytest.TempPathFactory, world: World,
        keystone: keystone_mod.Keystone) -> Iterator[Process]:
    """``precache-api`` as a process, behind keystonemiddleware."""
    folder = str(tmp_path_factory.mktemp('precache-api'))
    port = keystone_mod.free_port()
    conf = api_conf(folder, world, keystone, port)
    url = 'http://127.0.0.1:%d' % port
    served = start_process(
        [os.path.join(BIN, 'precache-api'), '--config-file', conf],
        os.path.join(folder, 'precache-api.log'), url)
    keystone.register_service('compute', 'nova', url + '/v2.1')
    try:
        yield served
    finally:
        stop_process(served.process)
        text = served.log_text()
        assert 'Traceback' not in text, text[-3000:]


@pytest.fixture(scope='package')
def admin_token(keystone: keystone_mod.Keystone) -> str:
    return keystone.token('admin')


@pytest.fixture
def as_admin(api: Process, admin_token: str) -> Served:
    return Served(api.url, {'X-Auth-Token': admin_token})


def cache_body(*image_ids: str) -> dict[str, Any]:
    return {'cache': [{'id': image_id} for image_id in image_ids]}


def fault(resp: requests.Response, code: int) -> str:
    """Assert a Nova-style fault with ``code``; its message."""
    assert resp.status_code == code, (resp.status_code, resp.text)
    assert resp.headers['Content-Type'].startswith('application/json')
    body = resp.json()
    assert len(body) == 1, body
    kind, inner = next(iter(body.items()))
    assert inner['code'] == code, body
    assert isinstance(inner['message'], str) and inner['message'], body
    assert 'Traceback' not in resp.text
    return inner['message']

