"""The file store passes the store contract (tests/unit/agent/
store_contract.py); the rbd store runs the same checks in tests/ceph."""

from __future__ import annotations

import hashlib

import pytest

from precache.agent import stores
from precache.agent.stores.file import FileStore
from tests.unit.agent import store_contract


@pytest.fixture
def store(tmp_path) -> FileStore:
    store = stores.load(name='file')
    assert isinstance(store, FileStore)
    store.prepare()
    return store


@pytest.mark.parametrize('check', store_contract.CHECKS,
                         ids=lambda check: check.__name__)
def test_file_store_contract(store, check):
    def read(image_id: str) -> str:
        with open(store.path(image_id), 'rb') as stream:
            return hashlib.sha512(stream.read()).hexdigest()

    check(store, read)


def test_a_file_sink_refuses_a_clone(store):
    store_contract.refuses_a_clone(store)


def test_loaded_by_its_option(conf):
    conf.config(group='agent', store='file')
    assert type(stores.load('host-1')) is FileStore
    assert stores.load('host-1').host == 'host-1'
