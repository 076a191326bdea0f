"""An agent service: RPC server over one host's image cache."""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import rpc
from precache.agent import backends as backends_mod
from precache.agent.backends.base import Backend
from precache.agent.cache import ImageCache
from precache.agent.manager import AgentManager
from precache.agent.store import FileStore
from precache.conf import CONF

LOG = logging.getLogger(__name__)


class AgentService:
    def __init__(self, transport: messaging.Transport,
                 host: str | None = None, store: FileStore | None = None,
                 backends: list[Backend] | None = None,
                 cell: str | None = None) -> None:
        self.host = host or CONF.host
        self.cache = ImageCache(self.host, store or FileStore(),
                                backends if backends is not None
                                else backends_mod.load())
        self.manager = AgentManager(self.cache, cell or CONF.agent.cell)
        self.server = rpc.get_server(transport, rpc.AGENT_TOPIC, self.host,
                                     [self.manager])

    def start(self) -> None:
        self.cache.start()
        self.server.start()
        LOG.info('Agent %(host)s started: store %(store)s, backends '
                 '%(backends)s', {'host': self.host,
                                  'store': self.cache.store.base_dir,
                                  'backends': ', '.join(
                                      b.name for b in self.cache.backends)})

    def stop(self) -> None:
        """Stop taking requests; :meth:`wait` for those in progress.

        Separate, so that many services can be stopped in parallel.
        """
        self.server.stop()

    def wait(self) -> None:
        self.server.wait()
