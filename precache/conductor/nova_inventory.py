"""Inventory ``nova``: aggregates (hosts, metadata) read from Nova.

Nova's API shows no cell per host (host mappings are internal), so
:meth:`NovaInventory.cell_of` answers None and the conductor takes each
host's cell from the agent registry, where every agent reports its own.
"""

from __future__ import annotations

from precache.clients.nova import NovaAggregate, NovaClient
from precache.conductor.inventory import Aggregate, Inventory


class NovaInventory(Inventory):
    def __init__(self, client: NovaClient | None = None) -> None:
        self.client = client or NovaClient()

    def check(self) -> None:
        """Fail at start-up, in one line, when Nova cannot be used."""
        self.client.check()

    @staticmethod
    def _ours(found: NovaAggregate) -> Aggregate:
        return Aggregate(id=str(found.id), name=found.name,
                         hosts=found.hosts, uuid=found.uuid,
                         metadata=dict(found.metadata),
                         created_at=found.created_at,
                         updated_at=found.updated_at)

    def get_aggregate(self, ref: str) -> Aggregate:
        return self._ours(self.client.get_aggregate(ref))

    def list_aggregates(self) -> list[Aggregate]:
        return [self._ours(found) for found in self.client.list_aggregates()]

    def cell_of(self, host: str) -> str | None:
        return None
