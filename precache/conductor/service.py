"""A conductor service: RPC server, job runner and their dependencies."""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import rpc
from precache.clients import images
from precache.clients.images import ImageService
from precache.conductor import inventory as inventory_mod
from precache.conductor.cells import CellMap
from precache.conductor.inventory import Inventory
from precache.conductor.jobs import JobRunner
from precache.conductor.liveness import Liveness
from precache.conductor.manager import ConductorManager
from precache.conductor.registry import (
    AgentStatus,
    Registry,
    RegistryInventory,
)
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore
from precache.db.registry import RegistryStore

LOG = logging.getLogger(__name__)


class ConductorService:
    def __init__(self, transport: messaging.Transport,
                 host: str | None = None, store: JobStore | None = None,
                 inventory: Inventory | None = None,
                 image_service: ImageService | None = None) -> None:
        self.host = host or CONF.host
        self.store = store or JobStore()
        self.registry = Registry(RegistryStore(self.store.engine))
        # NOTE: hosts take their cell from the inventory, else from what
        # their agent reports (Nova's API shows no cells).
        self.inventory = RegistryInventory(
            inventory or inventory_mod.load(), self.registry)
        self.cells = CellMap(transport)
        self.runner = JobRunner(self.store, self.inventory,
                                image_service or images.load(),
                                self.cells.agent_api, self.host,
                                agent_status=self._agent_status)
        self.liveness = Liveness(self.runner.leases, self.host, self.runner,
                                 self.runner.lease_clock)
        self.manager = ConductorManager(self.runner, self.registry,
                                        peers=ConductorAPI(transport))
        # NOTE: one server per bus: agents heartbeat over their cell's.
        self.servers = [rpc.get_server(each, rpc.CONDUCTOR_TOPIC,
                                       self.host, [self.manager])
                        for each in self.cells.transports()]
        self.server = self.servers[0]

    def _agent_status(self, host: str, cell: str | None) -> AgentStatus:
        why = self.cells.skip_reason(host, cell)
        return AgentStatus(skip_reason=why) if why else self.registry.status(
            host)

    def start(self) -> None:
        migration.check_current(self.store.url)
        self.cells.check()
        for dependency in (self.inventory.inner, self.runner.image_service):
            # NOTE: Keystone, Nova or Glance unusable → one line now.
            check = getattr(dependency, 'check', None)
            if check:
                check()
        self.liveness.report(started=True)
        self.manager.start()
        self.liveness.start()
        for server in self.servers:
            server.start()
        self.registry.listening()
        LOG.info('Conductor %s started', self.host)

    def stop(self) -> None:
        """Drain: stop taking requests and starting hosts, wait up to
        ``graceful_shutdown_timeout`` for the calls in flight, record
        them, release the leases; see :meth:`wait`."""
        LOG.info('Conductor %s stopping: draining its jobs', self.host)
        self.liveness.drain()
        for server in self.servers:
            server.stop()
        self.manager.stop()
        self.liveness.stop()

    @property
    def drained(self) -> bool:
        """Whether no call was left in flight by :meth:`stop`."""
        return self.runner.drained

    def wait(self) -> None:
        for server in self.servers:
            server.wait()
        self.store.close()
