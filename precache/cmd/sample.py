"""Sample images and inventory for the all-in-one mode.

The images are made once, deterministically: runs of pseudo-random data
between holes, like real disk images, with Glance's checksum (MD5),
os_hash_algo (sha512) and os_hash_value recorded in a catalog.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from collections.abc import Callable

import yaml

MiB = 1024 * 1024
_NAMESPACE = uuid.UUID('6f1c1e8a-6d0c-4a55-9d0e-3c1f5e0b7a21')

#: name, size in MiB, share of 1 MiB blocks that hold data
IMAGES = (('cirros-0.6.2', 32, 0.6),
          ('ubuntu-24.04', 96, 0.45),
          ('windows-2022', 192, 0.35))

CELLS = {'cell1': ['cmp-c1-%02d' % i for i in range(1, 6)],
         'cell2': ['cmp-c2-%02d' % i for i in range(1, 5)],
         'edge': ['edge-%02d' % i for i in range(1, 4)]}


def image_id(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def write_image(path: str, size_mib: int, share: float,
                seed: str) -> dict[str, object]:
    """A raw image of ``size_mib`` MiB at ``path``, ``share`` of it random
    data and the rest holes, the same for the same ``seed``; its size and
    Glance's hashes."""
    rng = random.Random(seed)
    sha512, md5 = hashlib.sha512(), hashlib.md5()  # noqa: S324 - Glance's
    zeros = bytes(MiB)
    temp = path + '.tmp'
    with open(temp, 'wb') as out:
        for _ in range(size_mib):
            if rng.random() < share:
                block = rng.randbytes(MiB)
                out.write(block)
            else:
                block = zeros
                out.seek(MiB, os.SEEK_CUR)
            sha512.update(block)
            md5.update(block)
        out.truncate(size_mib * MiB)
    os.replace(temp, path)
    return {'size': size_mib * MiB, 'checksum': md5.hexdigest(),
            'os_hash_algo': 'sha512', 'os_hash_value': sha512.hexdigest()}


def ensure_images(folder: str,
                  progress: Callable[[str], None] = lambda name: None
                  ) -> str:
    """Make the sample images and catalog unless present; return catalog."""
    catalog = os.path.join(folder, 'catalog.json')
    if os.path.exists(catalog):
        return catalog
    os.makedirs(folder, exist_ok=True)
    images = []
    for name, size_mib, share in IMAGES:
        progress(name)
        file_name = name + '.raw'
        meta = write_image(os.path.join(folder, file_name), size_mib,
                           share, seed=name)
        images.append({'id': image_id(name), 'name': name,
                       'status': 'active', 'disk_format': 'raw',
                       'container_format': 'bare',
                       'locations': [{'url': file_name, 'metadata': {}}],
                       **meta})
    with open(catalog + '.tmp', 'w') as out:
        json.dump(images, out, indent=2)
    os.replace(catalog + '.tmp', catalog)
    return catalog


def ensure_inventory(path: str) -> str:
    """3 cells, 12 hosts; aggregate 1 'compute' (all), 2 'edge'."""
    if not os.path.exists(path):
        document = {
            'cells': {cell: {'hosts': hosts} for cell, hosts in CELLS.items()},
            'aggregates': [
                {'id': 1, 'name': 'compute',
                 'uuid': str(uuid.uuid5(_NAMESPACE, 'aggregate-compute')),
                 'hosts': [h for hosts in CELLS.values() for h in hosts]},
                {'id': 2, 'name': 'edge',
                 'uuid': str(uuid.uuid5(_NAMESPACE, 'aggregate-edge')),
                 'hosts': CELLS['edge']},
            ]}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as out:
            yaml.safe_dump(document, out, sort_keys=False)
    return path
