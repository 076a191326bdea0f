"""StaticInventory: lookups, cells and malformed files."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from precache import exception
from precache.conductor import inventory
from precache.conductor.inventory import StaticInventory

AGG_UUID = '8c9b3a3e-7f0e-4f43-9d1c-5a9c1b8b1f10'

DOCUMENT = {
    'cells': {'cell1': {'hosts': ['c1-a', 'c1-b']},
              'cell2': ['c2-a']},
    'aggregates': [
        {'id': 1, 'name': 'compute', 'uuid': AGG_UUID,
         'hosts': ['c1-a', 'c1-b', 'c2-a', 'loose'],
         'metadata': {'ssd': True}},
        {'id': 2, 'name': 'empty'},
    ],
}


def _write(tmp_path, document, name='inventory.yaml') -> str:
    path = tmp_path / name
    if isinstance(document, str):
        path.write_text(document)
    else:
        path.write_text(yaml.safe_dump(document))
    return str(path)


@pytest.fixture
def static(tmp_path) -> StaticInventory:
    return StaticInventory(_write(tmp_path, DOCUMENT))


@pytest.mark.parametrize('ref', ['1', 'compute', AGG_UUID])
def test_get_aggregate_by_id_name_or_uuid(static, ref):
    aggregate = static.get_aggregate(ref)
    assert aggregate.id == '1'
    assert aggregate.name == 'compute'
    assert aggregate.uuid == AGG_UUID
    assert aggregate.hosts == ('c1-a', 'c1-b', 'c2-a', 'loose')
    assert aggregate.metadata == {'ssd': 'True'}


def test_aggregate_without_hosts(static):
    aggregate = static.get_aggregate('2')
    assert aggregate.name == 'empty'
    assert aggregate.hosts == ()
    assert aggregate.uuid is None


@pytest.mark.parametrize('ref', ['3', 'Compute', 'nope', ''])
def test_unknown_aggregate(static, ref):
    with pytest.raises(exception.AggregateNotFound) as info:
        static.get_aggregate(ref)
    assert info.value.kwargs == {'aggregate': ref}


def test_cell_of(static):
    assert static.cell_of('c1-a') == 'cell1'
    assert static.cell_of('c1-b') == 'cell1'
    assert static.cell_of('c2-a') == 'cell2'
    assert static.cell_of('loose') is None
    assert static.cell_of('unknown') is None


def test_json_file_works_too(tmp_path):
    path = tmp_path / 'inventory.json'
    path.write_text(json.dumps(DOCUMENT))
    assert StaticInventory(str(path)).get_aggregate('compute').id == '1'


def test_path_from_configuration(tmp_path, conf):
    path = _write(tmp_path, DOCUMENT)
    conf.config(group='inventory', static_file=path)
    static = StaticInventory()
    assert static.path == path
    static.check()
    assert static.cell_of('c2-a') == 'cell2'


def test_load_uses_the_configured_driver(tmp_path, conf):
    conf.config(group='inventory', static_file=_write(tmp_path, DOCUMENT))
    loaded = inventory.load()
    assert isinstance(loaded, StaticInventory)
    assert loaded.get_aggregate(AGG_UUID).name == 'compute'


def test_reread_when_the_file_changes(tmp_path):
    path = _write(tmp_path, DOCUMENT)
    static = StaticInventory(path)
    assert static.cell_of('new') is None
    changed = dict(DOCUMENT, cells={'cell9': ['new']})
    _write(tmp_path, changed)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert static.cell_of('new') == 'cell9'


@pytest.mark.parametrize('document,reason', [
    ({'cells': {'a': ['h1'], 'b': ['h2', 'h1']}},
     'host h1 is in cells a and b'),
    ({'aggregates': [{'id': 1, 'hosts': []}]},
     'aggregate #1 needs an id and a name'),
    ({'aggregates': [{'name': 'x'}]}, 'aggregate #1 needs an id and a name'),
    ({'aggregates': [{'id': 1, 'name': 'a'}, 'not a mapping']},
     'aggregate #2 needs an id and a name'),
    (['cells', 'aggregates'], 'top level must be a mapping'),
    ('just a string', 'top level must be a mapping'),
    ('', 'top level must be a mapping'),
    ({'cells': ['h1']}, 'cells must map a cell name to its hosts'),
    ({'cells': {'a': 'h1'}}, 'cell a: hosts must be a list of names'),
    ({'cells': {'a': ['h1', '']}}, 'cell a: hosts must be a list of names'),
    ({'aggregates': [{'id': 1, 'name': 'a', 'hosts': 'h1'}]},
     'aggregate a: hosts must be a list of names'),
    ({'aggregates': [{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'a'}]},
     'aggregate id/name/uuid a is not unique'),
    ({'aggregates': [{'id': 1, 'name': 'a'}, {'id': 2, 'name': '1'}]},
     'aggregate id/name/uuid 1 is not unique'),
    ({'hosts': []}, 'unknown key(s): hosts'),
    ({'aggregates': [{'id': 1, 'name': 'a', 'hosts': ['h1', 'h2', 'h1']}]},
     'aggregate a: host(s) listed twice: h1'),
    ({'cells': {'a': ['h1', 'h1']}}, 'cell a: host(s) listed twice: h1'),
])
def test_malformed_documents(tmp_path, document, reason):
    path = _write(tmp_path, document)
    with pytest.raises(exception.InventoryInvalid) as info:
        StaticInventory(path).check()
    assert str(info.value) == 'Inventory %s is not usable: %s' % (path,
                                                                  reason)


def test_bad_yaml_names_the_file(tmp_path):
    path = _write(tmp_path, 'cells: [a\naggregates: {')
    with pytest.raises(exception.InventoryInvalid) as info:
        StaticInventory(path).get_aggregate('1')
    message = str(info.value)
    assert message.startswith('Inventory %s is not usable: ' % path)
    assert '\n' not in message


def test_missing_file_names_the_file(tmp_path):
    path = str(tmp_path / 'missing.yaml')
    with pytest.raises(exception.InventoryInvalid) as info:
        StaticInventory(path).cell_of('h')
    assert path in str(info.value)
    assert 'No such file' in str(info.value)
