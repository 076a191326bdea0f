"""Builders of the small clouds the test tiers run.

Every tier needs the same few things: a static inventory of hosts in
aggregates and cells, a local image catalog with the image files beside
it, and config files naming them (a job store too). The unit and API tiers
also run a conductor and agents in the test process over them
(:class:`LocalServices`); the functional and Ceph tiers start them as
processes (tests/functional/harness.py) from the same files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from precache.agent.backends.file import FileBackend
from precache.agent.service import AgentService
from precache.agent.stores.file import FileStore
from precache.clients.images import LocalImageService
from precache.conductor.inventory import StaticInventory
from precache.conductor.service import ConductorService
from precache.db import migration
from precache.db.api import JobStore

KiB = 1024


# -- hosts, aggregates, cells ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """Hosts in cells and aggregates, as a static inventory lists them."""

    cells: Mapping[str, list[str]]
    aggregates: Sequence[Mapping[str, Any]]

    @property
    def hosts(self) -> list[str]:
        """Every host of every cell, in order."""
        return [host for hosts in self.cells.values() for host in hosts]

    def cell_of(self, host: str) -> str | None:
        return next((cell for cell, hosts in self.cells.items()
                     if host in hosts), None)


class Inventory:
    """The conductor's static inventory file ([inventory] static_file).

    ``aggregates`` (and ``cells``, if any) stay editable: change them,
    then :meth:`write`.
    """

    def __init__(self, path: str,
                 aggregates: Sequence[Mapping[str, Any]] = (),
                 cells: Mapping[str, list[str]] | None = None) -> None:
        self.path = path
        self.aggregates: list[Any] = list(aggregates)
        self.cells = dict(cells) if cells is not None else None
        self.write()

    @classmethod
    def of(cls, path: str, layout: Layout) -> Inventory:
        return cls(path, layout.aggregates, layout.cells)

    def write(self) -> None:
        document: dict[str, Any] = {'aggregates': self.aggregates}
        if self.cells is not None:
            document['cells'] = self.cells
        temp = self.path + '.tmp'
        with open(temp, 'w') as out:
            yaml.safe_dump(document, out)
        previous = None
        if os.path.exists(self.path):
            previous = os.stat(self.path).st_mtime_ns
        os.replace(temp, self.path)
        # NOTE: the conductor re-reads the file when its mtime changes;
        # two writes within one timer tick could share an mtime.
        now = max(time.time_ns(), (previous or 0) + 10_000_000)
        os.utime(self.path, ns=(now, now))


# -- images -----------------------------------------------------------------


def random_bytes(size: int, zero_tail: int = 0) -> bytes:
    """``size`` random bytes followed by ``zero_tail`` zero bytes."""
    return os.urandom(size) + bytes(zero_tail)


def write_sparse_image(path: str, blocks: int, block_size: int = 64 * KiB,
                       data_share: float = 0.6,
                       seed: int = 0) -> tuple[int, str, str]:
    """Runs of random data and zero runs (holes), like a real disk image;
    (size, md5, sha512)."""
    rng = random.Random(seed)
    md5, sha512 = hashlib.md5(), hashlib.sha512()  # noqa: S324 - Glance's
    zeros = bytes(block_size)
    with open(path, 'wb') as out:
        for index in range(blocks):
            # NOTE: the first block always holds data, so a fetch in
            # progress is visible as a growing temporary file.
            if index == 0 or rng.random() < data_share:
                block = os.urandom(block_size)
                out.write(block)
            else:
                block = zeros
                out.seek(block_size, os.SEEK_CUR)
            md5.update(block)
            sha512.update(block)
        out.truncate(blocks * block_size)
    return blocks * block_size, md5.hexdigest(), sha512.hexdigest()


@dataclasses.dataclass
class Image:
    """An image file with Glance's checksum and os_hash_value."""

    id: str
    name: str
    path: str
    size: int
    checksum: str
    os_hash_value: str

    def entry(self, location: str, **overrides: Any) -> dict[str, Any]:
        """The image as the local catalog lists it (Glance's fields)."""
        return {'id': self.id, 'name': self.name, 'status': 'active',
                'size': self.size, 'disk_format': 'raw',
                'container_format': 'bare', 'checksum': self.checksum,
                'os_hash_algo': 'sha512',
                'os_hash_value': self.os_hash_value,
                'locations': [{'url': location, 'metadata': {}}],
                **overrides}


class ImageCatalog:
    """The local image catalog ([image_service] local_catalog): Glance's
    fields as JSON in ``folder``, the image files beside it.

    ``entries`` stay editable: change them, then :meth:`write`.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, 'catalog.json')
        self.entries: list[dict[str, Any]] = []
        self.write()

    def write(self) -> None:
        temp = self.path + '.tmp'
        with open(temp, 'w') as out:
            json.dump(self.entries, out, indent=2)
        os.replace(temp, self.path)

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        """List one entry as it is; it."""
        self.entries.append(entry)
        self.write()
        return entry

    def file_path(self, image_id: str) -> str:
        """Where :meth:`add_image` writes the image's file."""
        return os.path.join(self.folder, '%s.raw' % image_id)

    def add_image(self, data: bytes, status: str = 'active',
                  bad_hash: bool = False, located: bool = True,
                  **fields: Any) -> str:
        """A new raw image of ``data``, its file beside the catalog (its
        location relative to it) unless not ``located``; its id.

        ``bad_hash`` lists a sha512 that is not the data's; ``fields``
        replace the catalog's.
        """
        image_id = str(uuid.uuid4())
        digest = hashlib.sha512(b'not it' if bad_hash else data)
        entry: dict[str, Any] = {
            'id': image_id, 'name': 'image-%s' % image_id[:8],
            'status': status, 'size': len(data), 'disk_format': 'raw',
            'os_hash_algo': 'sha512', 'os_hash_value': digest.hexdigest(),
            'locations': []}
        if located:
            with open(self.file_path(image_id), 'wb') as out:
                out.write(data)
            entry['locations'] = [{'url': os.path.basename(
                self.file_path(image_id)), 'metadata': {}}]
        entry.update(fields)
        self.add(entry)
        return image_id

    def add_sparse_image(self, name: str, blocks: int = 8, *,
                         block_size: int = 64 * KiB,
                         data_share: float = 0.6,
                         **overrides: Any) -> Image:
        """Write ``name``.raw (see :func:`write_sparse_image`) and list it
        with an absolute location, as a path and as a file:// URL in
        turn (the two forms the catalog accepts)."""
        path = os.path.join(self.folder, '%s.raw' % name)
        size, md5, sha512 = write_sparse_image(
            path, blocks, block_size, data_share, seed=len(self.entries))
        image = Image(id=str(uuid.uuid4()), name=name, path=path,
                      size=size, checksum=md5, os_hash_value=sha512)
        location = path if len(self.entries) % 2 == 0 else 'file://' + path
        self.add(image.entry(location, **overrides))
        return image


# -- configuration and job store --------------------------------------------


def write_conf(path: str, sections: Mapping[str, Mapping[str, Any]]) -> str:
    """An oslo.config file of these sections; its path."""
    lines = []
    for section, options in sections.items():
        lines.append('[%s]' % section)
        for name, value in options.items():
            if isinstance(value, bool):
                value = str(value).lower()
            lines.append('%s = %s' % (name, value))
        lines.append('')
    with open(path, 'w') as out:
        out.write('\n'.join(lines))
    return path


def conductor_sections(inventory: str, catalog: str,
                       db_url: str) -> dict[str, dict[str, Any]]:
    """The config sections that point a conductor at these files."""
    return {'database': {'connection': db_url},
            'inventory': {'static_file': inventory},
            'image_service': {'local_catalog': catalog}}


def sqlite_url(path: str) -> str:
    return 'sqlite:///%s' % path


def migrated_sqlite(path: str) -> str:
    """A SQLite job store at ``path``, migrated in this process; its URL."""
    url = sqlite_url(path)
    migration.upgrade(url)
    return url


# -- services in this process -------------------------------------------------


class LocalServices:
    """A conductor and agents in this process over ``transport``.

    Under ``root``: a FileStore per agent host, a migrated SQLite job
    store, the static inventory of ``layout`` and an empty image catalog.
    Each agent's cell is its cell in ``layout``.
    """

    def __init__(self, root: str, transport: Any, layout: Layout,
                 agent_hosts: Sequence[str], conductor_host: str) -> None:
        self.root = root
        self.layout = layout
        self.transport = transport
        self.images = ImageCatalog(os.path.join(root, 'images'))
        self.inventory_file = Inventory.of(
            os.path.join(root, 'inventory.yaml'), layout)
        self.db_url = migrated_sqlite(os.path.join(root, 'jobs.sqlite'))
        self.stores = {host: FileStore(os.path.join(root, host))
                       for host in agent_hosts}
        self.agents = [AgentService(transport, host=host,
                                    store=self.stores[host],
                                    backends=[FileBackend()],
                                    cell=layout.cell_of(host))
                       for host in agent_hosts]
        self.store = JobStore(self.db_url)
        self.conductor = self.make_conductor(conductor_host, self.store)

    def make_conductor(self, host: str, store: JobStore,
                       inventory: str | None = None) -> ConductorService:
        """A conductor (not started) over ``store`` and the catalog."""
        return ConductorService(
            self.transport, host=host, store=store,
            inventory=StaticInventory(inventory or self.inventory_file.path),
            image_service=LocalImageService(self.images.path))

    def start(self) -> None:
        for agent in self.agents:
            agent.start()
        self.conductor.start()
