"""The rbd store passes the store contract (tests/unit/agent/
store_contract.py) on a real cluster, as the file store does."""

from __future__ import annotations

import pytest

from precache.agent import stores
from precache.agent.rbd import locations
from precache.agent.stores.rbd import RbdStore
from tests.ceph.helpers import CephCluster, MiB, RbdImage
from tests.unit.agent import store_contract


@pytest.fixture
def store(ceph_conf_main) -> RbdStore:
    store = stores.load('contract-host', name='rbd')
    assert isinstance(store, RbdStore)
    store.prepare()
    return store


@pytest.mark.parametrize('check', store_contract.CHECKS,
                         ids=lambda check: check.__name__)
def test_rbd_store_contract(store, ceph: CephCluster, check):
    made: list[str] = []

    def read(image_id: str) -> str:
        made.append(image_id)
        return ceph.read_image('vms', image_id, snapshot='snap')[0]

    try:
        check(store, read)
    finally:
        for image_id in made:
            ceph.delete_image('vms', image_id)


def test_clones_only_from_its_own_cluster(store, ceph: CephCluster):
    image: RbdImage = ceph.make_image(4 * MiB, seed=31)
    own = locations.parse(image.location)
    other = locations.parse('rbd://%s/images/x/snap'
                            % '00000000-0000-4000-8000-000000000000')
    assert store.clone_sources([other, own]) == ([own], None)
    sources, reason = store.clone_sources([other])
    assert sources == [] and reason.startswith(
        "no location on the store's cluster ")
    spec = image.spec()
    with store.lock(spec.id):
        sink = store.open_sink(spec)
        assert sink.clone_from(own) == 4 * MiB
        sink.commit(0)
    try:
        assert store.is_resident(spec)
        assert ceph.read_image('vms', spec.id, snapshot='snap')[0] == \
            spec.os_hash_value
    finally:
        ceph.delete_image('vms', spec.id)
