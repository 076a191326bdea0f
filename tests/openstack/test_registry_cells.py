"""Agent registry and cells over real RabbitMQ (one vhost per bus).

Conductor and agents run in this process (AgentService/ConductorService,
the same classes the commands run), each on the transport of its bus.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import pytest
import yaml

from precache import objects, rpc
from precache.agent.backends.base import Backend
from precache.agent.heartbeat import RegistryAPI
from precache.agent.service import AgentService
from precache.agent.stores.file import FileStore
from precache.clients.images import LocalImageService
from precache.cmd import stop_all
from precache.conductor.inventory import StaticInventory
from precache.conductor.rpcapi import ConductorAPI
from precache.conductor.service import ConductorService
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore
from tests.functional.harness import HOST, PORT, rabbitmqctl, script

pytestmark = pytest.mark.rabbit
State = objects.HostImageState


@pytest.fixture
def vhosts() -> Iterator[Callable[[], str]]:
    """Makes RabbitMQ vhosts (transport URLs), deleted after the test."""
    made: list[str] = []

    def make() -> str:
        name = 'precache-openstack-%s' % uuid.uuid4().hex[:10]
        rabbitmqctl('add_vhost', name)
        made.append(name)
        rabbitmqctl('set_permissions', '-p', name, 'guest', '.*', '.*', '.*')
        return 'rabbit://guest:guest@%s:%d/%s' % (HOST, PORT, name)

    yield make
    rpc.cleanup()
    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: rabbitmqctl('delete_vhost', name), made))


class SlowBackend(Backend):
    """Takes a while per image and records how many run at once, per cell."""

    name = 'slow'
    method = objects.Method.FILE
    lock = threading.Lock()
    running: Counter = Counter()
    peak: Counter = Counter()
    peak_total = 0

    def __init__(self, cell: str, seconds: float = 0.4) -> None:
        self.cell, self.seconds = cell, seconds

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        return None

    def fetch(self, image: objects.ImageSpec, dest_path: str) -> int:
        cls = SlowBackend
        with cls.lock:
            cls.running[self.cell] += 1
            cls.peak[self.cell] = max(cls.peak[self.cell],
                                      cls.running[self.cell])
            cls.peak_total = max(cls.peak_total, sum(cls.running.values()))
        try:
            time.sleep(self.seconds)
            with open(dest_path, 'wb') as out:
                out.truncate(image.size or 0)
        finally:
            with cls.lock:
                cls.running[self.cell] -= 1
        return image.size or 0


class Site:
    """A catalog of one image, an inventory, a job store, services."""

    def __init__(self, root: str, cells: dict[str, list[str]],
                 hosts: list[str]) -> None:
        self.root = root
        data = b'registry' * 1024
        self.image_id = str(uuid.uuid4())
        self.catalog = os.path.join(root, 'catalog.json')
        with open(self.catalog, 'w') as out:
            json.dump([{'id': self.image_id, 'status': 'active',
                        'size': len(data), 'disk_format': 'raw',
                        'os_hash_algo': 'sha512',
                        'os_hash_value': hashlib.sha512(data).hexdigest(),
                        'locations': []}], out)
        self.inventory = os.path.join(root, 'inventory.yaml')
        with open(self.inventory, 'w') as out:
            yaml.safe_dump({'cells': cells, 'aggregates': [
                {'id': 1, 'name': 'agg', 'hosts': hosts}]}, out)
        self.db_url = 'sqlite:///%s' % os.path.join(root, 'jobs.sqlite')
        migration.upgrade(self.db_url)
        self.agents: dict[str, AgentService] = {}

    def conductor(self, url: str) -> ConductorService:
        return ConductorService(
            rpc.get_transport(CONF, url), host='cond-%s' % uuid.uuid4().hex,
            store=JobStore(self.db_url),
            inventory=StaticInventory(self.inventory),
            image_service=LocalImageService(self.catalog))

    def agent(self, url: str, host: str, cell: str | None,
              backend: Backend) -> AgentService:
        agent = AgentService(rpc.get_transport(CONF, url), host=host,
                             store=FileStore(os.path.join(self.root, host)),
                             backends=[backend], cell=cell)
        agent.start()
        self.agents[host] = agent
        return agent


def wait_for(predicate: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError('condition not met in %ss' % timeout)


def run_job(api: ConductorAPI, image_id: str) -> objects.Job:
    ctxt = rpc.request_context(request_id='req-test')
    job = api.cache_images(ctxt, 'agg', [image_id])
    wait_for(lambda: api.get_job(ctxt, job.id, False).state.is_final, 60)
    return api.get_job(ctxt, job.id)


def states(job: objects.Job) -> dict[str, tuple[str, str | None]]:
    return {r.host: (r.state.value, r.reason) for r in job.results or []}


def agents_by_host(api: ConductorAPI) -> dict[str, dict[str, Any]]:
    return {a['host']: a for a in api.list_agents(rpc.request_context())}


def test_agent_down_after_silence_then_back(conf, tmp_path, vhosts):
    conf.config(group='registry', heartbeat_interval=1, heartbeat_jitter=0,
                agent_down_time=3)
    conf.config(group='conductor', agent_ping_timeout=3,
                call_monitor_timeout=5)
    url = vhosts()
    hosts = ['r-h1', 'r-h2', 'r-old', 'r-silent']
    site = Site(str(tmp_path), {'c1': hosts}, hosts)
    conductor = site.conductor(url)
    conductor.start()
    try:
        for host in ('r-h1', 'r-h2'):
            site.agent(url, host, 'c1', SlowBackend('c1', 0))
        registry = RegistryAPI(rpc.get_transport(CONF, url))
        api = ConductorAPI(rpc.get_transport(CONF, url), timeout=15)
        # an agent heard once, then silent: a host that died
        registry.heartbeat({}, {'host': 'r-silent', 'cell': 'c1',
                                'rpc_version': '1.0', 'backends': ['file'],
                                'stores': []})
        wait_for(lambda: agents_by_host(api).get('r-silent', {}).get(
            'state') == 'down')
        # an agent of an RPC version this conductor cannot use
        registry.heartbeat({}, {'host': 'r-old', 'cell': 'c1',
                                'rpc_version': '0.9', 'backends': ['file'],
                                'stores': []})
        agents = wait_for(lambda: len(agents_by_host(api)) == 4
                          and agents_by_host(api))
        assert agents['r-h1']['state'] == 'up'
        assert agents['r-h1']['cell'] == 'c1'
        assert agents['r-h1']['backends'] == ['slow']
        assert agents['r-h1']['free_bytes'] > 0
        assert agents['r-old']['state'] == 'too old'

        job = run_job(api, site.image_id)
        assert states(job)['r-h1'] == ('cached', None)
        assert states(job)['r-h2'] == ('cached', None)
        assert states(job)['r-old'][0] == 'skipped'
        assert states(job)['r-old'][1].startswith('agent too old')
        state, reason = states(job)['r-silent']
        assert state == 'skipped' and reason.startswith('agent down')

        # A clean stop says goodbye: skipped at once, not after
        # agent_down_time, and never called.
        stop_all([site.agents.pop('r-h2')])
        wait_for(lambda: agents_by_host(api)['r-h2']['state'] == 'stopped')
        assert agents_by_host(api)['r-h1']['state'] == 'up'
        assert agents_by_host(api)['r-h1']['cache_images'] == 1
        started = time.monotonic()
        job = run_job(api, site.image_id)
        assert states(job)['r-h1'] == ('existing', None)
        state, reason = states(job)['r-h2']
        assert state == 'skipped' and reason.startswith('agent stopped (at ')
        # skipped from the registry: no ping waited for
        assert time.monotonic() - started < 3

        site.agent(url, 'r-h2', 'c1', SlowBackend('c1', 0))
        wait_for(lambda: agents_by_host(api)['r-h2']['state'] == 'up')
        job = run_job(api, site.image_id)
        assert states(job)['r-h2'] == ('existing', None)

        listing = subprocess.run(
            [script('precache-manage'), '--config-file',
             _manage_conf(tmp_path, url), 'agents', 'list'],
            capture_output=True, text=True, timeout=60, check=False)
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0].split()[:3] == ['HOST', 'CELL', 'STATE']
        listed = {line.split()[0]: line.split()[2] for line in lines[1:]}
        assert sorted(listed) == ['r-h1', 'r-h2', 'r-old', 'r-silent']
        assert (listed['r-h1'], listed['r-h2'], listed['r-silent']) == (
            'up', 'up', 'down')
    finally:
        stop_all([conductor, *site.agents.values()])


def _manage_conf(tmp_path, url: str) -> str:
    path = os.path.join(str(tmp_path), 'manage.conf')
    with open(path, 'w') as out:
        out.write('[DEFAULT]\ntransport_url = %s\nlog_file = %s\n'
                  % (url, os.path.join(str(tmp_path), 'manage.log')))
    return path


def test_two_cells_one_call_per_cell_at_once(conf, tmp_path, vhosts):
    conf.config(group='registry', heartbeat_interval=1, heartbeat_jitter=0)
    conf.config(group='conductor', max_concurrent_hosts=10,
                max_concurrent_hosts_per_cell=1)
    default, bus1, bus2 = vhosts(), vhosts(), vhosts()
    conf.config(group='cells', transport_url=['c1=' + bus1, 'c2=' + bus2])
    hosts = {'c1': ['x-a1', 'x-a2', 'x-a3'], 'c2': ['x-b1', 'x-b2', 'x-b3']}
    site = Site(str(tmp_path), {}, [*hosts['c1'], *hosts['c2'],
                                    'x-nocell'])
    SlowBackend.running.clear()
    SlowBackend.peak.clear()
    SlowBackend.peak_total = 0
    conductor = site.conductor(default)
    conductor.start()
    try:
        for cell, url in (('c1', bus1), ('c2', bus2)):
            for host in hosts[cell]:
                site.agent(url, host, cell, SlowBackend(cell))
        api = ConductorAPI(rpc.get_transport(CONF, default), timeout=15)
        # heartbeats came over each cell's own bus
        agents = wait_for(lambda: len(agents_by_host(api)) == 6
                          and agents_by_host(api))
        assert {h: a['cell'] for h, a in agents.items()} == {
            h: c for c, names in hosts.items() for h in names}

        job = run_job(api, site.image_id)

        found = states(job)
        for cell_hosts in hosts.values():
            for host in cell_hosts:
                assert found[host] == ('cached', None)
        state, reason = found['x-nocell']
        assert state == 'skipped' and reason.startswith('no cell known')
        assert {r.host: r.cell for r in job.results or []}['x-b1'] == 'c2'
        assert SlowBackend.peak == Counter({'c1': 1, 'c2': 1})
        assert SlowBackend.peak_total == 2  # the cells ran side by side
    finally:
        stop_all([conductor, *site.agents.values()])
