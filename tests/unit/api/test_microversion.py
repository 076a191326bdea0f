"""Compute microversions: negotiation, errors and the echo on responses."""

from __future__ import annotations

import pytest
import webob.exc

from precache.api import microversion
from tests.unit.api.conftest import AGGREGATE, IMAGE_ID, cache_body, fault

VARY = 'OpenStack-API-Version, X-OpenStack-Nova-API-Version'


def _echoed(resp) -> str:
    """The version a response says it served; both headers agree."""
    legacy = resp.headers['X-OpenStack-Nova-API-Version']
    assert resp.headers['OpenStack-API-Version'] == 'compute ' + legacy
    assert resp.headers['Vary'] == VARY
    return legacy


@pytest.mark.parametrize('headers, served', [
    ({}, '2.81'),
    ({'OpenStack-API-Version': 'compute 2.1'}, '2.1'),
    ({'OpenStack-API-Version': 'compute 2.41'}, '2.41'),
    ({'OpenStack-API-Version': 'compute latest'}, '2.81'),
    ({'OpenStack-API-Version': 'compute LATEST'}, '2.81'),
    ({'OpenStack-API-Version': 'Compute 2.50'}, '2.50'),
    ({'OpenStack-API-Version': 'image 2.5, compute 2.60'}, '2.60'),
    ({'OpenStack-API-Version': 'image 2.5'}, '2.81'),
    ({'X-OpenStack-Nova-API-Version': '2.10'}, '2.10'),
    ({'X-OpenStack-Nova-API-Version': 'latest'}, '2.81'),
    ({'OpenStack-API-Version': 'compute 2.30',
      'X-OpenStack-Nova-API-Version': '2.20'}, '2.30'),
])
def test_negotiated_version_is_echoed(client, headers, served):
    resp = client('GET', '/jobs', headers=headers)
    assert resp.status_int == 200, resp.text
    assert _echoed(resp) == served


@pytest.mark.parametrize('value', ['2.82', '3.0', '2.0', '1.1', '999.0'])
@pytest.mark.parametrize('header', ['OpenStack-API-Version',
                                    'X-OpenStack-Nova-API-Version'])
def test_out_of_range_is_406(client, conductor, header, value):
    prefix = 'compute ' if header == 'OpenStack-API-Version' else ''
    resp = client('GET', '/jobs', headers={header: prefix + value})
    message = fault(resp, 406)
    assert message == ('Version %s is not supported by the API. Minimum is '
                       '2.1 and maximum is 2.81.' % value)
    assert conductor.calls == []
    # NOTE: the echo names the newest version.
    assert _echoed(resp) == '2.81'


@pytest.mark.parametrize('value', ['two', '2', '2.', '.1', '2.1.1', 'v2.1',
                                   '02.1', '2.01', '2.1a', '-2.1', '2,1'])
def test_malformed_is_400(client, conductor, value):
    resp = client('GET', '/jobs',
                  headers={'OpenStack-API-Version': 'compute ' + value})
    message = fault(resp, 400)
    assert message.startswith('API Version String ')
    assert 'is of invalid format. Must be of format MajorNum.MinorNum.' \
        in message
    assert conductor.calls == []


def test_public_paths_ignore_a_bad_version(client):
    for value in ('compute two', 'compute 9.9'):
        resp = client('GET', '/', headers={'OpenStack-API-Version': value})
        assert resp.status_int == 200
        assert _echoed(resp) == '2.81'


@pytest.mark.parametrize('value, code', [('2.80', 404), ('2.1', 404),
                                         ('2.81', 202), ('latest', 202)])
def test_post_images_exists_from_2_81(client, conductor, value, code):
    resp = client('POST', '/os-aggregates/11/images',
                  json=cache_body(IMAGE_ID),
                  headers={'OpenStack-API-Version': 'compute ' + value})
    assert resp.status_int == code, resp.text
    if code == 404:
        assert 'exists from compute API version 2.81' in fault(resp, 404)
        assert conductor.calls == []
    assert _echoed(resp) == {'latest': '2.81'}.get(value, value)


@pytest.mark.parametrize('value, shows_uuid', [('2.40', False),
                                               ('2.41', True)])
def test_aggregate_uuid_shows_from_2_41(client, value, shows_uuid):
    headers = {'X-OpenStack-Nova-API-Version': value}
    shown = client('GET', '/os-aggregates/11', headers=headers).json_body
    listed = client('GET', '/os-aggregates', headers=headers).json_body
    for aggregate in (shown['aggregate'], listed['aggregates'][0]):
        assert ('uuid' in aggregate) is shows_uuid
        if shows_uuid:
            assert aggregate['uuid'] == AGGREGATE['uuid']
        assert aggregate['availability_zone'] == 'az-unit'


def test_faults_carry_the_version_headers(client):
    for method, path in (('GET', '/nothing'), ('PUT', '/jobs')):
        resp = client(method, path,
                      headers={'OpenStack-API-Version': 'compute 2.5'})
        assert resp.status_int >= 400
        assert _echoed(resp) == '2.5'


# -- the module on its own ----------------------------------------------------


def test_parse_without_a_header_is_the_newest():
    assert microversion.parse({}) == microversion.MAX_VERSION


def test_parse_reads_the_environ_headers():
    assert microversion.parse(
        {'HTTP_OPENSTACK_API_VERSION': 'compute 2.7'}) == (2, 7)
    assert microversion.parse(
        {'HTTP_X_OPENSTACK_NOVA_API_VERSION': '2.12'}) == (2, 12)


def test_malformed_message_cuts_a_long_value():
    with pytest.raises(webob.exc.HTTPBadRequest) as caught:
        microversion.parse({'HTTP_X_OPENSTACK_NOVA_API_VERSION': 'x' * 500})
    assert 'x' * 41 not in caught.value.detail


def test_headers_are_nova_s():
    assert microversion.headers((2, 7)) == [
        ('OpenStack-API-Version', 'compute 2.7'),
        ('X-OpenStack-Nova-API-Version', '2.7'),
        ('Vary', VARY)]


def test_require_is_404_below_the_minimum():
    microversion.require({microversion.ENVIRON_KEY: (2, 81)}, (2, 81))
    microversion.require({}, (2, 81))
    with pytest.raises(webob.exc.HTTPNotFound):
        microversion.require({microversion.ENVIRON_KEY: (2, 80)}, (2, 81))
