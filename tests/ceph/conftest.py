"""Tests against real Ceph clusters (no mocks of librados or librbd).

``ceph`` is a cluster started once per session by ``tools/ceph-cluster``
in a tmp folder and stopped (by PID) at the end; ``ceph_other`` is a
second, independent cluster (its own fsid) from the same script, started
only when a test needs one. Each test gets the agent configured for them
through ``ceph_conf``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from precache.agent.rbd import clusters
from precache.conf import ceph as ceph_conf
from tests.ceph.helpers import CephCluster, missing_requirements


def _cluster(name: str, factory: pytest.TempPathFactory
             ) -> Iterator[CephCluster]:
    why_not = missing_requirements()
    if why_not:
        pytest.fail(why_not)  # a skipped test would hide a broken set-up
    cluster = CephCluster(name, str(factory.mktemp('ceph-' + name)))
    try:
        cluster.start()
        yield cluster
    finally:
        clusters.shutdown_all()
        cluster.stop()


@pytest.fixture(scope='session')
def ceph(tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[CephCluster]:
    yield from _cluster('main', tmp_path_factory)


@pytest.fixture(scope='session')
def ceph_other(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[CephCluster]:
    yield from _cluster('other', tmp_path_factory)


def configure_other(conf, cluster: CephCluster, **options: str) -> None:
    """Add ``cluster`` to the agent's [ceph] other_clusters, as
    ``[ceph:<its name>]``."""
    ceph_conf.cluster_group(conf.conf, cluster.name)
    conf.config(group='ceph:' + cluster.name, conf_file=cluster.conf,
                **options)
    conf.config(group='ceph', other_clusters=[
        *(conf.conf.ceph.other_clusters or ()), cluster.name])


@pytest.fixture
def ceph_conf_main(conf, ceph: CephCluster):
    """The agent's main cluster ([ceph] conf_file) is ``ceph``; its rbd
    store (if used) is pool ``vms`` there."""
    conf.config(group='ceph', conf_file=ceph.conf, op_timeout=30)
    conf.config(group='rbd_store', pool='vms')
    return conf
