"""OpenStack integration tests: a real Glance, a Nova API double, cells.

Glance 33 runs from its own venv (built once into the cache folder, see
glance_server.py) under gunicorn on 127.0.0.1, without Keystone. Tests
reach it directly or through :class:`FlakyProxy`, which breaks streams,
answers 503 or refuses Range on demand.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from precache.clients import keystone
from tests.openstack import glance_server
from tests.openstack.proxy import FlakyProxy


@pytest.fixture(scope='session')
def glance(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[glance_server.GlanceServer]:
    with glance_server.running(str(tmp_path_factory.mktemp('glance'))
                               ) as server:
        yield server


class Images:
    """Creates images in the test Glance; remembers their bytes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.data: dict[str, bytes] = {}

    def create(self, data: bytes | None, name: str = 'test',
               **extra: Any) -> dict[str, Any]:
        answer = requests.post(
            self.url + '/v2/images', timeout=30,
            json={'name': name, 'disk_format': 'raw',
                  'container_format': 'bare', **extra})
        answer.raise_for_status()
        image = answer.json()
        if data is not None:
            requests.put(self.url + '/v2/images/%s/file' % image['id'],
                         data=data, timeout=60,
                         headers={'Content-Type':
                                  'application/octet-stream'}
                         ).raise_for_status()
            self.data[image['id']] = data
        return self.get(image['id'])

    def get(self, image_id: str) -> dict[str, Any]:
        answer = requests.get(self.url + '/v2/images/' + image_id,
                              timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def delete(self, image_id: str) -> None:
        requests.delete(self.url + '/v2/images/' + image_id,
                        timeout=30).raise_for_status()


def random_bytes(size: int, seed: str = 'x') -> bytes:
    """Incompressible, reproducible bytes."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha512(b'%s-%d' % (seed.encode(), counter)).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture
def images(glance: glance_server.GlanceServer) -> Images:
    return Images(glance.url)


@pytest.fixture
def proxy(glance: glance_server.GlanceServer) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(glance.port)
    yield flaky
    flaky.stop()


@pytest.fixture
def glance_conf(conf: Any, proxy: FlakyProxy) -> Iterator[Any]:
    """[glance] pointing at the proxy (in front of Glance), no Keystone."""
    keystone.reset()
    conf.config(group='glance', endpoint_override=proxy.url,
                retry_delay=0.01, num_retries=2, read_timeout=10)
    conf.config(group='agent', chunk_size=64)
    os.makedirs(conf.conf.agent.instances_path, exist_ok=True)
    yield conf
    keystone.reset()
