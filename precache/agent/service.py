"""An agent service: RPC server over one host's image cache."""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import rpc
from precache.agent import backends as backends_mod
from precache.agent import stores
from precache.agent.backends.base import Backend
from precache.agent.cache import ImageCache
from precache.agent.heartbeat import Heartbeater
from precache.agent.manager import AgentManager
from precache.agent.stores.base import Store
from precache.conf import CONF

LOG = logging.getLogger(__name__)


class AgentService:
    def __init__(self, transport: messaging.Transport,
                 host: str | None = None,
                 store: Store | None = None,
                 backends: list[Backend] | None = None,
                 cell: str | None = None) -> None:
        self.host = host or CONF.host
        self.cache = ImageCache(self.host, store or stores.load(self.host),
                                backends if backends is not None
                                else backends_mod.load())
        self.manager = AgentManager(self.cache, cell or CONF.agent.cell)
        self.server = rpc.get_server(transport, rpc.AGENT_TOPIC, self.host,
                                     [self.manager])
        self.heartbeater = Heartbeater(
            transport, self.host, self.manager.cell,
            self.manager.RPC_API_VERSION,
            [b.name for b in self.cache.backends], self.cache.store)

    def start(self) -> None:
        for backend in self.cache.backends:
            # NOTE: e.g. glance-http authenticates now, so bad
            # credentials stop the agent with one line, not every fetch.
            check = getattr(backend, 'check', None)
            if check:
                check()
        self.cache.start()
        self.server.start()
        self.heartbeater.start()
        LOG.info('Agent %(host)s started: store %(store)s, backends '
                 '%(backends)s', {'host': self.host,
                                  'store': str(self.cache.store),
                                  'backends': ', '.join(
                                      b.name for b in self.cache.backends)})

    def stop(self) -> None:
        """Stop taking requests; :meth:`wait` for those in progress.

        Separate, so that many services can be stopped in parallel.
        """
        self.heartbeater.stop()
        self.server.stop()

    def wait(self) -> None:
        self.server.wait()
