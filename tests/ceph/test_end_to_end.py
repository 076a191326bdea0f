"""End to end: a conductor and three agents over RabbitMQ cache an image
that lives in Ceph (Glance's RBD layout) on three hosts.

Hosts ``fs1`` and ``fs2`` have Nova's file cache (images_type = raw /
qcow2): the image is exported, verified, into ``_base``. Host ``rbd1`` is
an RBD-backed compute (images_type = rbd): the image is cloned into the
``vms`` pool and no ``_base`` file is written. A second job finds it
resident everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from precache import objects, rpc
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from tests.ceph.helpers import MiB, sha512_file
from tests.fixtures import sqlite_url
from tests.functional.harness import (
    Cluster,
    db_sync,
    private_vhost,
    results_by_host,
)

State = objects.HostImageState
pytestmark = pytest.mark.rabbit


@pytest.fixture(scope='module')
def transport_url() -> Iterator[str]:
    with private_vhost('precache-ceph') as url:
        yield url


@pytest.fixture(scope='module')
def conductor_api(transport_url: str) -> Iterator[ConductorAPI]:
    transport = rpc.get_transport(CONF, transport_url)
    try:
        yield ConductorAPI(transport, timeout=15)
    finally:
        rpc.cleanup()


@pytest.fixture
def world(tmp_path, transport_url: str,
          conductor_api: ConductorAPI) -> Iterator[Cluster]:
    url = db_sync(sqlite_url(str(tmp_path / 'jobs.sqlite')), str(tmp_path))
    world = Cluster(str(tmp_path / 'world'), transport_url, url,
                    conductor_api)
    try:
        yield world
    finally:
        world.kill_all()


def test_rbd_image_on_three_hosts(world: Cluster, ceph) -> None:
    image = ceph.make_image(64 * MiB, seed=31)
    world.catalog.append(image.catalog_entry())
    world._write_catalog()
    aggregate = world.add_aggregate('ceph', ['fs1', 'fs2', 'rbd1'])

    agents = {}
    for short in ('fs1', 'fs2', 'rbd1'):
        store = 'rbd' if short.startswith('rbd') else 'file'
        agent = world.agent(short, store=store,
                            enabled_backends='rbd-clone,rbd-export')
        agent.rewrite_config('ceph', conf_file=ceph.conf)
        agent.rewrite_config('rbd_store', pool='vms')
        agents[short] = agent.start()
    # NOTE: the first I/O on a cluster started seconds ago, under the
    # whole suite on 2 cores, once went 10 s (the harness's monitor
    # timeout, meant to catch dead agents fast) without a heartbeat.
    world.make_conductor(call_monitor_timeout=30).start()
    for service in world.services:
        service.wait_ready()

    job = world.wait_job(world.submit(aggregate, [image]).id, timeout=60)
    assert job.state is objects.JobState.DONE, job
    by_host = results_by_host(job)
    for short in ('fs1', 'fs2'):
        agent = agents[short]
        result = by_host[agent.host][image.id]
        assert result.state is State.CACHED, result.reason
        assert result.method is objects.Method.RBD_EXPORT
        assert result.bytes == image.size
        path = agent.cache_path(image.id)
        assert sha512_file(path) == image.sha512
        assert os.stat(path).st_blocks * 512 < image.size
        assert agent.temp_files() == []
    rbd_host = agents['rbd1']
    result = by_host[rbd_host.host][image.id]
    assert result.state is State.CACHED, result.reason
    assert result.method is objects.Method.RBD_CLONE
    assert ceph.image_info('vms', image.id)['parent']['image'] == image.id
    assert rbd_host.files() == []        # no _base file on an RBD compute

    again = world.wait_job(world.submit(aggregate, [image]).id, timeout=60)
    assert again.counts['existing'] == 3, again.counts
    assert world.log_errors() == []
