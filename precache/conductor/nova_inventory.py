"""Inventory ``nova``: aggregates (hosts, metadata) read from Nova.

Nova's API shows no cell per host (host mappings are internal), so
:meth:`NovaInventory.cell_of` answers None and the conductor takes each
host's cell from the agent registry, where every agent reports its own.
"""

from __future__ import annotations

from precache.clients.nova import NovaClient
from precache.conductor.inventory import Aggregate, Inventory


class NovaInventory(Inventory):
    def __init__(self, client: NovaClient | None = None) -> None:
        self.client = client or NovaClient()

    def check(self) -> None:
        """Fail at start-up, in one line, when Nova cannot be used."""
        self.client.check()

    def get_aggregate(self, ref: str) -> Aggregate:
        found = self.client.get_aggregate(ref)
        return Aggregate(id=str(found.id), name=found.name,
                         hosts=found.hosts, uuid=found.uuid,
                         metadata=dict(found.metadata))

    def cell_of(self, host: str) -> str | None:
        return None
