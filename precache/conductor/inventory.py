"""Inventories: which hosts form an aggregate, and each host's cell.

``static`` reads a YAML (or JSON) file; Nova's ``os-aggregates`` plugs in
behind the same interface (entry points ``precache.conductor.inventory``).
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import os
from typing import Any

import yaml

from precache import exception, plugins
from precache.conf import CONF


@dataclasses.dataclass(frozen=True)
class Aggregate:
    id: str
    name: str
    hosts: tuple[str, ...]
    uuid: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    #: ISO 8601, as Nova shows them; None when the inventory cannot say.
    created_at: str | None = None
    updated_at: str | None = None


class Inventory(abc.ABC):
    @abc.abstractmethod
    def get_aggregate(self, ref: str) -> Aggregate:
        """By integer id, uuid or name.

        :raises: precache.exception.AggregateNotFound
        """

    @abc.abstractmethod
    def list_aggregates(self) -> list[Aggregate]:
        """Every aggregate, in the inventory's order.

        :raises: InventoryInvalid, ServiceUnavailable
        """

    @abc.abstractmethod
    def cell_of(self, host: str) -> str | None:
        """The cell a host belongs to, or None when it is in none."""


def load(name: str | None = None) -> Inventory:
    """The inventory named by ``[inventory] driver`` (or ``name``)."""
    inventory: Inventory = plugins.load_driver(
        plugins.INVENTORIES, name or CONF.inventory.driver)
    return inventory


def _fail(source: str, reason: str) -> exception.InventoryInvalid:
    return exception.InventoryInvalid(source=source, reason=reason)


def _host_list(source: str, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(h, str) and h for h in value):
        raise _fail(source, '%s: hosts must be a list of names' % where)
    # NOTE: a job has one row per (host, image); a repeated host would
    # make every job on this aggregate fail to be recorded.
    repeated = sorted({h for h in value if value.count(h) > 1})
    if repeated:
        raise _fail(source, '%s: host(s) listed twice: %s'
                    % (where, ', '.join(repeated)))
    return tuple(value)


def parse_static(source: str, data: Any
                 ) -> tuple[dict[str, str], list[Aggregate]]:
    """Validate a static inventory document; see inventory.yaml.example."""
    if not isinstance(data, dict):
        raise _fail(source, 'top level must be a mapping')
    unknown = set(data) - {'cells', 'aggregates'}
    if unknown:
        raise _fail(source, 'unknown key(s): %s' % ', '.join(sorted(unknown)))
    cells = data.get('cells') or {}
    if not isinstance(cells, dict):
        raise _fail(source, 'cells must map a cell name to its hosts')
    cell_of: dict[str, str] = {}
    for cell, spec in cells.items():
        hosts = spec.get('hosts') if isinstance(spec, dict) else spec
        for host in _host_list(source, 'cell %s' % cell, hosts):
            if host in cell_of:
                raise _fail(source, 'host %s is in cells %s and %s'
                            % (host, cell_of[host], cell))
            cell_of[host] = str(cell)
    aggregates = []
    seen: set[str] = set()
    for index, spec in enumerate(data.get('aggregates') or []):
        if not isinstance(spec, dict) or 'id' not in spec \
                or 'name' not in spec:
            raise _fail(source, 'aggregate #%d needs an id and a name'
                        % (index + 1))
        aggregate = Aggregate(
            id=str(spec['id']), name=str(spec['name']),
            uuid=str(spec['uuid']) if spec.get('uuid') else None,
            hosts=_host_list(source, 'aggregate %s' % spec['name'],
                             spec.get('hosts', [])),
            metadata={str(k): str(v)
                      for k, v in (spec.get('metadata') or {}).items()})
        for key in (aggregate.id, aggregate.name, aggregate.uuid):
            if key is not None and key in seen:
                raise _fail(source, 'aggregate id/name/uuid %s is not '
                            'unique' % key)
        seen.update(k for k in (aggregate.id, aggregate.name,
                                aggregate.uuid) if k)
        aggregates.append(aggregate)
    return cell_of, aggregates


class StaticInventory(Inventory):
    """A file of cells and aggregates, re-read when it changes."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._loaded: tuple[float, dict[str, str], list[Aggregate]] | None \
            = None

    @property
    def path(self) -> str:
        return self._path or CONF.inventory.static_file

    def _data(self) -> tuple[dict[str, str], list[Aggregate]]:
        try:
            mtime = os.stat(self.path).st_mtime
            if self._loaded is None or self._loaded[0] != mtime:
                with open(self.path) as stream:
                    document = yaml.safe_load(stream)
                cells, aggregates = parse_static(self.path, document)
                # NOTE: a file knows no history; an aggregate is shown as
                # created when the file that defines it was last written.
                written = datetime.datetime.fromtimestamp(
                    mtime, datetime.UTC).replace(
                    tzinfo=None).isoformat()
                self._loaded = (mtime, cells, [
                    dataclasses.replace(a, created_at=written)
                    for a in aggregates])
        except (OSError, yaml.YAMLError) as exc:
            raise _fail(self.path, str(exc).replace('\n', ' ')) from exc
        return self._loaded[1], self._loaded[2]

    def check(self) -> None:
        """Fail now (at start-up) rather than at the first job."""
        self._data()

    def get_aggregate(self, ref: str) -> Aggregate:
        for aggregate in self._data()[1]:
            if ref in (aggregate.id, aggregate.name, aggregate.uuid):
                return aggregate
        raise exception.AggregateNotFound(aggregate=ref)

    def list_aggregates(self) -> list[Aggregate]:
        return list(self._data()[1])

    def cell_of(self, host: str) -> str | None:
        return self._data()[0].get(host)
