"""A small cloud in this process: one conductor and three agents.

It runs the production services over kombu's in-process ``memory``
transport, exactly like the all-in-one mode: real RPC (with call monitor
heartbeats, which oslo.messaging's ``fake://`` driver ignores), real
FileStores in tmp, a real SQLite job store, a static inventory and a local
image catalog. It is started once per test session; tests add their own
images (:meth:`Cloud.add_image`) so that they do not depend on each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from precache import objects, rpc
from precache.agent.backends.file import FileBackend
from precache.agent.service import AgentService
from precache.agent.store import FileStore
from precache.clients.images import LocalImageService
from precache.cmd import stop_all
from precache.conductor.inventory import StaticInventory
from precache.conductor.rpcapi import ConductorAPI
from precache.conductor.service import ConductorService
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore

CELLS = {'cell1': ['u-h1', 'u-h2'], 'cell2': ['u-h3', 'u-ghost']}
AGENTS = ['u-h1', 'u-h2', 'u-h3']
AGGREGATES = [
    {'id': 1, 'name': 'all', 'uuid': '0f7a6c1e-1b0e-4c55-8f0e-3a6b1d9c2e01',
     'hosts': ['u-h1', 'u-h2', 'u-h3']},
    {'id': 2, 'name': 'partial', 'hosts': ['u-h1', 'u-h3', 'u-ghost']},
    {'id': 3, 'name': 'one', 'hosts': ['u-h2']},
    {'id': 4, 'name': 'empty', 'hosts': []},
]


class Cloud:
    def __init__(self, root: str) -> None:
        self.root = root
        self.images_dir = os.path.join(root, 'images')
        os.makedirs(self.images_dir)
        self.catalog = os.path.join(self.images_dir, 'catalog.json')
        self._write_catalog([])
        self.inventory = os.path.join(root, 'inventory.yaml')
        with open(self.inventory, 'w') as out:
            yaml.safe_dump({'cells': CELLS, 'aggregates': AGGREGATES}, out)
        self.db_url = 'sqlite:///%s' % os.path.join(root, 'jobs.sqlite')
        migration.upgrade(self.db_url)
        # NOTE: a URL (and exchange) of our own: the transport cache and
        # the memory broker are per process and shared with other tests.
        self.url = 'kombu+memory:///unit-%s' % uuid.uuid4().hex[:8]
        CONF.set_override('control_exchange',
                          'precache-unit-%s' % uuid.uuid4().hex[:8])
        try:
            self.transport = rpc.get_transport(CONF, self.url)
        finally:
            CONF.clear_override('control_exchange')
        self.stores = {host: FileStore(os.path.join(root, host))
                       for host in AGENTS}
        cell_of = {h: c for c, hosts in CELLS.items() for h in hosts}
        self.agents = [AgentService(self.transport, host=host,
                                    store=self.stores[host],
                                    backends=[FileBackend()],
                                    cell=cell_of[host])
                       for host in AGENTS]
        self.store = JobStore(self.db_url)
        self.conductor = self.make_conductor('u-conductor', self.store)
        self.api = ConductorAPI(self.transport, timeout=15)

    def make_conductor(self, host: str, store: JobStore,
                       inventory: str | None = None) -> ConductorService:
        return ConductorService(
            self.transport, host=host, store=store,
            inventory=StaticInventory(inventory or self.inventory),
            image_service=LocalImageService(self.catalog))

    def start(self) -> None:
        for agent in self.agents:
            agent.start()
        self.conductor.start()

    def stop(self) -> None:
        stop_all([self.conductor, *self.agents])

    def _write_catalog(self, entries: list[dict[str, Any]]) -> None:
        with open(self.catalog + '.tmp', 'w') as out:
            json.dump(entries, out)
        os.replace(self.catalog + '.tmp', self.catalog)

    def add_image(self, data: bytes | None = None, status: str = 'active',
                  bad_hash: bool = False, located: bool = True,
                  **fields: Any) -> str:
        """A new image in the catalog (its file next to it); its id."""
        image_id = str(uuid.uuid4())
        data = os.urandom(48 * 1024) + bytes(16 * 1024) \
            if data is None else data
        digest = hashlib.sha512(b'not it' if bad_hash else data)
        entry: dict[str, Any] = {
            'id': image_id, 'name': 'image-%s' % image_id[:8],
            'status': status, 'size': len(data), 'disk_format': 'raw',
            'os_hash_algo': 'sha512', 'os_hash_value': digest.hexdigest(),
            'locations': []}
        if located:
            name = '%s.raw' % image_id
            with open(os.path.join(self.images_dir, name), 'wb') as out:
                out.write(data)
            entry['locations'] = [{'url': name, 'metadata': {}}]
        entry.update(fields)
        with open(self.catalog) as stream:
            entries = json.load(stream)
        self._write_catalog([*entries, entry])
        return image_id

    def image_path(self, image_id: str) -> str:
        return os.path.join(self.images_dir, '%s.raw' % image_id)

    def wait(self, job_id: str, timeout: float = 30,
             store: JobStore | None = None) -> objects.Job:
        """Poll until the job is final (through RPC unless a store)."""
        deadline = time.monotonic() + timeout
        while True:
            job = (store.get_job(job_id) if store is not None
                   else self.api.get_job({}, job_id))
            if job.state.is_final:
                return job
            assert time.monotonic() < deadline, 'job %s is %s' % (
                job_id, job.state.value)
            time.sleep(0.02)


@pytest.fixture(scope='session')
def cloud(tmp_path_factory) -> Iterator[Cloud]:
    """The running cloud, shared by every test that asks for it."""
    cloud = Cloud(str(tmp_path_factory.mktemp('cloud')))
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()
        rpc.cleanup()


@pytest.fixture
def own_store(tmp_path) -> Iterator[JobStore]:
    """A job store of the test's own (SQLite, migrated): for runners that
    must not share the session cloud's."""
    url = 'sqlite:///%s' % (tmp_path / 'own.sqlite')
    migration.upgrade(url)
    store = JobStore(url)
    yield store
    store.close()
