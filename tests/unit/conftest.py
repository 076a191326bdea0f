"""A small cloud in this process: one conductor and three agents.

It runs the production services over kombu's in-process ``memory``
transport, exactly like the all-in-one mode: real RPC (with call monitor
heartbeats, which oslo.messaging's ``fake://`` driver ignores), real
FileStores in tmp, a real SQLite job store, a static inventory and a local
image catalog. It is started once per test session; tests add their own
images (:meth:`Cloud.add_image`) so that they do not depend on each other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from precache import objects, rpc
from precache.cmd import stop_all
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore
from tests.fixtures import Layout, LocalServices, random_bytes

CELLS = {'cell1': ['u-h1', 'u-h2'], 'cell2': ['u-h3', 'u-ghost']}
AGENTS = ['u-h1', 'u-h2', 'u-h3']
AGGREGATES = [
    {'id': 1, 'name': 'all', 'uuid': '0f7a6c1e-1b0e-4c55-8f0e-3a6b1d9c2e01',
     'hosts': ['u-h1', 'u-h2', 'u-h3']},
    {'id': 2, 'name': 'partial', 'hosts': ['u-h1', 'u-h3', 'u-ghost']},
    {'id': 3, 'name': 'one', 'hosts': ['u-h2']},
    {'id': 4, 'name': 'empty', 'hosts': []},
]
LAYOUT = Layout(CELLS, AGGREGATES)


def _memory_transport() -> tuple[str, Any]:
    """A kombu memory URL and exchange of our own: the transport cache
    and the memory broker are per process and shared with other tests."""
    url = 'kombu+memory:///unit-%s' % uuid.uuid4().hex[:8]
    CONF.set_override('control_exchange',
                      'precache-unit-%s' % uuid.uuid4().hex[:8])
    try:
        return url, rpc.get_transport(CONF, url)
    finally:
        CONF.clear_override('control_exchange')


class Cloud(LocalServices):
    """The shared small cloud (:class:`tests.fixtures.LocalServices`) over
    the memory transport, with its RPC client as ``api``."""

    def __init__(self, root: str) -> None:
        self.url, transport = _memory_transport()
        super().__init__(root, transport, LAYOUT, AGENTS, 'u-conductor')
        self.images_dir = self.images.folder
        self.catalog = self.images.path
        self.inventory = self.inventory_file.path
        self.api = ConductorAPI(self.transport, timeout=15)

    def stop(self) -> None:
        stop_all([self.conductor, *self.agents])

    def add_image(self, data: bytes | None = None, status: str = 'active',
                  bad_hash: bool = False, located: bool = True,
                  **fields: Any) -> str:
        """A new image in the catalog (its file next to it); its id."""
        if data is None:
            data = random_bytes(48 * 1024, zero_tail=16 * 1024)
        return self.images.add_image(data, status, bad_hash, located,
                                     **fields)

    def image_path(self, image_id: str) -> str:
        return self.images.file_path(image_id)

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
