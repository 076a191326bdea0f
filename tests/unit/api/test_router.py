"""Route matching: the table, the /v2.1 prefix, 404 and 405."""

from __future__ import annotations

import pytest
import webob.exc

from precache.api import router
from tests.unit.api.conftest import (
    AGGREGATE,
    IMAGE_ID,
    JOB_ID,
    cache_body,
    fault,
    fault_kind,
)


@pytest.mark.parametrize('prefix', ['', '/v2.1'])
@pytest.mark.parametrize('method, path, called', [
    ('GET', '/os-aggregates', 'list_aggregates'),
    ('GET', '/os-aggregates/11', 'get_aggregate'),
    ('GET', '/os-aggregates/11/images', 'get_resident_images'),
    ('GET', '/jobs', 'list_jobs'),
    ('GET', '/jobs/%s' % JOB_ID, 'get_job'),
    ('DELETE', '/jobs/%s' % JOB_ID, 'cancel_job'),
    ('GET', '/v2/images', 'find_images'),
    ('GET', '/v2/images/%s' % IMAGE_ID, 'find_images'),
])
def test_every_route_reaches_its_conductor_call(client, conductor, prefix,
                                               method, path, called):
    resp = client(method, prefix + path)
    assert resp.status_int in (200, 202), resp.text
    assert conductor.names() == [called]


@pytest.mark.parametrize('prefix', ['', '/v2.1'])
def test_post_images_is_202_with_location_under_the_same_prefix(
        client, conductor, prefix):
    resp = client('POST', prefix + '/os-aggregates/11/images',
                  json=cache_body(IMAGE_ID))
    assert resp.status_int == 202, resp.text
    assert resp.headers['Location'] == (
        'http://localhost%s/jobs/%s' % (prefix, JOB_ID))
    call = conductor.calls[0]
    assert call.args[1:4] == ('11', [IMAGE_ID], {'source': 'api'})
    assert resp.json_body['job']['links'][0]['href'] == \
        resp.headers['Location']


def test_path_parameters_reach_the_conductor(client, conductor):
    client('GET', '/v2.1/os-aggregates/unit-all/')
    assert conductor.calls[0].args[1:] == ('unit-all',)


@pytest.mark.parametrize('path', [
    '/nothing', '/os-aggregate', '/os-aggregates/11/x',
    '/jobs/%s/x' % JOB_ID, '/v2.1/nothing', '/v2.0/jobs',
    '/v2.1/openapi.json', '/v2.1/v2.1/jobs', '/jobs//x'])
def test_unknown_paths_are_404_faults(client, conductor, path):
    resp = client('GET', path)
    assert 'No such resource' in fault(resp, 404)
    assert fault_kind(resp) == 'itemNotFound'
    assert conductor.calls == []


@pytest.mark.parametrize('method, path, allowed', [
    ('PUT', '/os-aggregates/11/images', 'GET, POST'),
    ('DELETE', '/v2.1/os-aggregates/11/images', 'GET, POST'),
    ('POST', '/jobs', 'GET'),
    ('PATCH', '/jobs/%s' % JOB_ID, 'DELETE, GET'),
    ('POST', '/os-aggregates/11', 'GET'),
    ('POST', '/', 'GET'),
    ('DELETE', '/v2.1', 'GET'),
    ('PUT', '/openapi.json', 'GET'),
])
def test_wrong_methods_are_405_with_allow(client, conductor, method, path,
                                          allowed):
    resp = client(method, path)
    message = fault(resp, 405)
    assert resp.headers['Allow'] == allowed
    assert fault_kind(resp) == 'badMethod'
    assert allowed in message
    assert conductor.calls == []


def test_root_lists_the_one_version(client, conductor):
    resp = client('GET', '/')
    assert resp.status_int == 200
    body = resp.json_body
    assert [v['id'] for v in body['versions']] == ['v2.1']
    assert body['version'] == body['versions'][0]
    assert body['version']['status'] == 'CURRENT'
    assert (body['version']['min_version'], body['version']['version']) \
        == ('2.1', '2.81')
    assert body['version']['links'][0]['href'] == 'http://localhost/v2.1/'
    assert conductor.calls == []


@pytest.mark.parametrize('path', ['/v2.1', '/v2.1/'])
def test_v21_shows_its_version(client, path):
    assert client('GET', path).json_body == {
        'version': client('GET', '/').json_body['version']}


def test_public_endpoint_is_used_in_links(client, conf):
    conf.config(group='api', public_endpoint='https://compute.example/')
    body = client('GET', '/').json_body
    assert body['version']['links'][0]['href'] == \
        'https://compute.example/v2.1/'


def test_openapi_document_is_public_json(client):
    resp = client('GET', '/openapi.json')
    assert resp.status_int == 200
    assert resp.content_type == 'application/json'
    assert 'paths' in resp.json_body


def test_responses_carry_a_request_id(client):
    for path in ('/', '/jobs', '/nothing'):
        assert client('GET', path).headers[
            'x-openstack-request-id'].startswith('req-')


# -- the Router on its own ----------------------------------------------------


@pytest.mark.parametrize('path, normal', [
    ('/v2.1/jobs', '/jobs'), ('/jobs/', '/jobs'), ('/v2.1/jobs/', '/jobs'),
    ('/', '/'), ('/v2.1', '/v2.1'), ('/v2.10/jobs', '/v2.10/jobs')])
def test_normalize(path, normal):
    assert router.Router.normalize(path) == normal


@pytest.mark.parametrize('path, public', [
    ('/', True), ('/v2.1', True), ('/v2.1/', True), ('/openapi.json', True),
    ('/jobs', False), ('/v2.1/jobs', False), ('/v2.1/openapi.json', False)])
def test_is_public(path, public):
    assert router.Router.is_public(path) is public


def test_match_gives_the_handler_and_parameters():
    handler, params = router.Router().match(
        'GET', '/v2.1/os-aggregates/%s/images' % AGGREGATE['uuid'])
    assert handler is router.ROUTES['/os-aggregates/{aggregate_id}/images'][
        'GET']
    assert params == {'aggregate_id': AGGREGATE['uuid']}


def test_match_405_lists_methods_sorted():
    with pytest.raises(webob.exc.HTTPMethodNotAllowed) as caught:
        router.Router().match('PUT', '/jobs/%s' % JOB_ID)
    assert caught.value.headers['Allow'] == 'DELETE, GET'


def test_match_404_cuts_a_long_path():
    with pytest.raises(webob.exc.HTTPNotFound) as caught:
        router.Router().match('GET', '/x' * 500)
    assert len(caught.value.detail) < 250
