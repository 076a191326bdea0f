"""Nova's aggregate reads, answered from the conductor's inventory.

``openstack aggregate cache image`` and ``nova aggregate-cache-images``
look the aggregate up (``GET /os-aggregates/{id}``, ``GET /os-aggregates``)
before they post; these are the answers they read, in Nova's format
(nova/api/openstack/compute/aggregates.py), against the API in this
process over the real conductor and RabbitMQ.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import AGGREGATE_UUID, HOSTS, fault

#: The keys of Nova's aggregate view at 2.41 and later.
NOVA_KEYS = {'availability_zone', 'created_at', 'deleted', 'deleted_at',
             'hosts', 'id', 'metadata', 'name', 'updated_at', 'uuid'}


@pytest.mark.parametrize('prefix', ['', '/v2.1'])
def test_list_is_novas_format(noauth, prefix):
    resp = noauth.get(prefix + '/os-aggregates',
                      headers={'OpenStack-API-Version': 'compute 2.81'})
    assert resp.status_code == 200, resp.text
    found = resp.json()['aggregates']
    assert [a['name'] for a in found] == ['api-all', 'api-one', 'api-empty']
    for aggregate in found:
        assert set(aggregate) == NOVA_KEYS
        assert aggregate['deleted'] is False
        assert aggregate['deleted_at'] is None
        assert aggregate['created_at'] is not None
    first, one = found[0], found[1]
    assert first['id'] == 11 and first['uuid'] == AGGREGATE_UUID
    assert first['hosts'] == HOSTS
    assert first['availability_zone'] is None and first['metadata'] == {}
    assert one['availability_zone'] == 'az-one'
    assert one['metadata'] == {'availability_zone': 'az-one'}
    assert one['uuid'] is None  # NOTE: the static file gives none


@pytest.mark.parametrize('ref', ['11', 'api-all', AGGREGATE_UUID])
def test_show_by_id_name_or_uuid(noauth, ref):
    resp = noauth.get('/v2.1/os-aggregates/%s' % ref)
    assert resp.status_code == 200, resp.text
    aggregate = resp.json()['aggregate']
    assert set(aggregate) == NOVA_KEYS
    assert (aggregate['id'], aggregate['name']) == (11, 'api-all')


def test_uuid_from_241_as_in_nova(noauth):
    for version, shown in (('2.40', False), ('2.41', True)):
        headers = {'X-OpenStack-Nova-API-Version': version}
        aggregate = noauth.get('/os-aggregates/11',
                               headers=headers).json()['aggregate']
        assert ('uuid' in aggregate) is shown, version
        listed = noauth.get('/os-aggregates',
                            headers=headers).json()['aggregates']
        assert ('uuid' in listed[0]) is shown, version


@pytest.mark.parametrize('ref', ['9999', 'no-such-aggregate',
                                 '%00', 'a%01b'])
def test_show_unknown_is_404(noauth, ref):
    message = fault(noauth.get('/os-aggregates/%s' % ref), 404)
    assert 'could not be found' in message
