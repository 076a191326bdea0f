"""Nova's 2.81 contract for POST /os-aggregates/{id}/images, and more.

The cases of nova/tests/functional/test_aggregates.py AggregatesV281Test,
then what precache does better (normalised duplicates, inactive images,
a job to look at), against the API served in this process (no auth).
"""

from __future__ import annotations

import pytest

from tests.api.conftest import AGGREGATE_UUID, HOSTS, cache_body, fault

NOVA_HEADERS = {'OpenStack-API-Version': 'compute 2.81',
                'X-OpenStack-Nova-API-Version': '2.81'}


def test_happy_path_202_with_location_and_job(noauth, world):
    image = world.add_image()
    resp = noauth.post('/os-aggregates/11/images', json=cache_body(image),
                       headers=NOVA_HEADERS)
    assert resp.status_code == 202, resp.text
    job = resp.json()['job']
    assert resp.headers['Location'] == '%s/jobs/%s' % (noauth.url,
                                                       job['id'])
    assert job['aggregate'] == 'api-all'
    assert job['image_ids'] == [image]
    assert job['hosts'] == len(HOSTS)
    assert job['links'][0]['href'] == resp.headers['Location']
    assert resp.headers['OpenStack-API-Version'] == 'compute 2.81'
    assert resp.headers['X-OpenStack-Nova-API-Version'] == '2.81'
    assert resp.headers['x-openstack-request-id'].startswith('req-')
    assert world.wait(job['id']).state.value == 'done'


def test_under_v21_prefix_location_keeps_prefix(noauth, world):
    resp = noauth.post('/v2.1/os-aggregates/12/images',
                       json=cache_body(world.add_image()))
    assert resp.status_code == 202, resp.text
    assert '/v2.1/jobs/' in resp.headers['Location']


@pytest.mark.parametrize('ref', ['11', 'api-all', AGGREGATE_UUID])
def test_aggregate_by_id_name_or_uuid(noauth, world, ref):
    resp = noauth.post('/os-aggregates/%s/images' % ref,
                       json=cache_body(world.add_image()))
    assert resp.status_code == 202, resp.text
    assert resp.json()['job']['aggregate'] == 'api-all'


def test_missing_image_is_400_naming_it(noauth, world):
    missing = '70a599e0-31e7-49b7-b260-868f441e862b'
    message = fault(noauth.post('/os-aggregates/11/images',
                                json=cache_body(world.add_image(),
                                                missing)), 400)
    assert missing in message


def test_inactive_image_is_400_naming_it(noauth, world):
    queued = world.add_image(status='queued')
    message = fault(noauth.post('/os-aggregates/11/images',
                                json=cache_body(queued)), 400)
    assert queued in message and 'queued' in message


def test_missing_aggregate_is_404(noauth, world):
    message = fault(noauth.post('/os-aggregates/9999/images',
                                json=cache_body(world.add_image())), 404)
    assert '9999' in message


@pytest.mark.parametrize('body, words', [
    ({'cache': []}, 'non-empty'),
    ({'cache': [{'id': '70a599e0-31e7-49b7-b260-868f441e862b',
                 'power': '1.21 gigawatts'}]}, 'Additional properties'),
    ({'cache': [{'power': '1.21 gigawatts'}]}, "'id' is a required"),
    ({}, "'cache' is a required"),
    ({'cache': [{'id': '70a599e0-31e7-49b7-b260-868f441e862b'}],
      'future': 'parameter'}, 'Additional properties'),
    ({'cache': [{'id': 'not-a-uuid'}]}, 'uuid'),
    ({'cache': [{'id': 42}]}, 'not of type'),
    ({'cache': 'x'}, 'not of type'),
    ({'cache': [None]}, 'not of type'),
    ([], 'not of type'),
    ('cache', 'not of type'),
])
def test_nova_schema_cases_are_400(noauth, world, body, words):
    before = world.job_count()
    message = fault(noauth.post('/os-aggregates/11/images', json=body), 400)
    assert words in message
    assert world.job_count() == before


def test_duplicates_are_400_even_in_other_spellings(noauth, world):
    image = world.add_image()
    for twin in (image, image.upper(), image.replace('-', ''),
                 '{%s}' % image, 'urn:uuid:%s' % image):
        message = fault(noauth.post('/os-aggregates/11/images',
                                    json=cache_body(image, twin)), 400)
        assert 'Duplicate' in message and image in message


def test_other_spellings_of_one_image_are_accepted(noauth, world):
    image = world.add_image()
    resp = noauth.post('/os-aggregates/12/images',
                       json=cache_body(image.upper().replace('-', '')))
    assert resp.status_code == 202, resp.text
    assert resp.json()['job']['image_ids'] == [image]


@pytest.mark.parametrize('headers, code', [
    ({'OpenStack-API-Version': 'compute 2.80'}, 404),
    ({'X-OpenStack-Nova-API-Version': '2.1'}, 404),
    ({'OpenStack-API-Version': 'compute 2.82'}, 406),
    ({'OpenStack-API-Version': 'compute 3.0'}, 406),
    ({'OpenStack-API-Version': 'compute two'}, 400),
    ({'OpenStack-API-Version': 'compute latest'}, 202),
    ({'OpenStack-API-Version': 'image 2.5, compute 2.81'}, 202),
    ({}, 202),
])
def test_microversions(noauth, world, headers, code):
    resp = noauth.post('/os-aggregates/12/images',
                       json=cache_body(world.add_image()), headers=headers)
    if code != 202:
        fault(resp, code)
    assert resp.status_code == code
    if code in (202, 404):
        version = {'2.80': '2.80', '2.1': '2.1'}.get(
            (headers.get('OpenStack-API-Version') or
             headers.get('X-OpenStack-Nova-API-Version') or '').split()[-1]
            if headers else '', '2.81')
        assert resp.headers['OpenStack-API-Version'] == 'compute ' + version
        assert resp.headers['X-OpenStack-Nova-API-Version'] == version


def test_version_documents(noauth):
    root = noauth.get('/').json()
    assert root['versions'][0]['id'] == 'v2.1'
    assert root['version'] == root['versions'][0]
    assert root['version']['version'] == '2.81'
    assert root['version']['min_version'] == '2.1'
    assert root['version']['links'][0]['href'] == noauth.url + '/v2.1/'
    for path in ('/v2.1', '/v2.1/'):
        assert noauth.get(path).json() == {'version': root['version']}
