"""A conductor service: RPC server, job runner and their dependencies."""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import rpc
from precache.agent.rpcapi import AgentAPI
from precache.clients import images
from precache.clients.images import ImageService
from precache.conductor import inventory as inventory_mod
from precache.conductor.inventory import Inventory
from precache.conductor.jobs import JobRunner
from precache.conductor.manager import ConductorManager
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore

LOG = logging.getLogger(__name__)


class ConductorService:
    def __init__(self, transport: messaging.Transport,
                 host: str | None = None, store: JobStore | None = None,
                 inventory: Inventory | None = None,
                 image_service: ImageService | None = None) -> None:
        self.host = host or CONF.host
        self.store = store or JobStore()
        self.inventory = inventory or inventory_mod.load()
        agent_api = AgentAPI(transport)
        # NOTE: one bus for now; per-cell transports plug in here.
        self.runner = JobRunner(self.store, self.inventory,
                                image_service or images.load(),
                                lambda cell: agent_api, self.host)
        self.manager = ConductorManager(self.runner)
        self.server = rpc.get_server(transport, rpc.CONDUCTOR_TOPIC,
                                     self.host, [self.manager])

    def start(self) -> None:
        migration.check_current(self.store.url)
        check = getattr(self.inventory, 'check', None)
        if check:
            check()
        self.manager.start()
        self.server.start()
        LOG.info('Conductor %s started', self.host)

    def stop(self) -> None:
        """Stop taking requests and starting hosts; see :meth:`wait`."""
        self.server.stop()
        self.manager.stop()

    def wait(self) -> None:
        self.server.wait()
        self.store.close()
