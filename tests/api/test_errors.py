"""Bad input gets a clear JSON error, never a 500 or a traceback, and a
failed request records nothing."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

import oslo_messaging as messaging
import pytest
import webob

from precache import exception
from precache.api import app as api_app
from precache.conf import CONF
from tests.api.conftest import cache_body, fault

JOB = '3f0c2b1e-5a7d-4c8e-9b6a-2d1e0f9c8b7a'


def raw_request(url: str, data: bytes) -> bytes:
    """Send bytes as they are (what no client library would send)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), 10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)


@pytest.mark.parametrize('data, content_type, code, words', [
    (b'{"cache": [', 'application/json', 400, 'Malformed'),
    (b'\xff\xfe{}', 'application/json', 400, 'Malformed'),
    (b'', 'application/json', 400, 'empty'),
    (b'   ', None, 400, 'empty'),
    (b'null', 'application/json', 400, 'not of type'),
    (b'{"cache": [{"id": "a"}]}', 'text/plain', 415, 'application/json'),
    (b'<cache/>', 'application/xml', 415, 'application/json'),
])
def test_bad_bodies(noauth, world, data, content_type, code, words):
    before = world.job_count()
    headers = {'Content-Type': content_type} if content_type else {}
    message = fault(noauth.post('/os-aggregates/11/images', data=data,
                                headers=headers), code)
    assert words in message
    assert world.job_count() == before


def test_json_with_charset_is_fine(noauth, world):
    resp = noauth.post('/os-aggregates/12/images',
                       json=None, data=b'{"cache": [{"id": "%s"}]}'
                       % world.add_image().encode(),
                       headers={'Content-Type':
                                'application/json; charset=UTF-8'})
    assert resp.status_code == 202, resp.text


def test_huge_body_is_413_before_reading(noauth, world):
    limit = CONF.api.max_request_body_size
    ids = [world.add_image() for _ in range(2)]
    body = cache_body(*ids)
    body['cache'] += [{'id': JOB}] * (limit // 40)
    before = world.job_count()
    message = fault(noauth.post('/os-aggregates/11/images', json=body), 413)
    assert str(limit) in message
    assert world.job_count() == before


def test_declared_length_alone_decides_413(noauth):
    reply = raw_request(noauth.url, (
        b'POST /os-aggregates/11/images HTTP/1.1\r\nHost: x\r\n'
        b'Content-Type: application/json\r\nContent-Length: 99999999\r\n'
        b'Connection: close\r\n\r\n{}'))
    assert reply.startswith(b'HTTP/1.0 413') or \
        reply.startswith(b'HTTP/1.1 413'), reply[:200]
    assert b'"overLimit"' in reply


def test_bad_content_length_is_400(noauth):
    reply = raw_request(noauth.url, (
        b'POST /os-aggregates/11/images HTTP/1.1\r\nHost: x\r\n'
        b'Content-Length: -5\r\nConnection: close\r\n\r\n'))
    assert b' 400 ' in reply.split(b'\r\n')[0], reply[:200]
    assert b'"badRequest"' in reply


@pytest.mark.parametrize('path', ['/nothing', '/os-aggregate',
                                  '/os-aggregates/11/x', '/jobs/%s/x' % JOB,
                                  '/v2.1/nothing', '/v2.0/jobs',
                                  '/v2.1/openapi.json'])
def test_unknown_routes_are_404(noauth, path):
    assert 'No such resource' in fault(noauth.get(path), 404)


@pytest.mark.parametrize('method, path, allowed', [
    ('PUT', '/os-aggregates/11/images', 'GET, POST'),
    ('DELETE', '/os-aggregates/11/images', 'GET, POST'),
    ('POST', '/jobs', 'GET'),
    ('PATCH', '/jobs/%s' % JOB, 'DELETE, GET'),
    ('POST', '/', 'GET'),
    ('HEAD', '/jobs', 'GET'),
])
def test_wrong_methods_are_405_with_allow(noauth, method, path, allowed):
    resp = noauth.request(method, path)
    assert resp.status_code == 405
    assert resp.headers['Allow'] == allowed
    if method != 'HEAD':
        fault(resp, 405)


@pytest.mark.parametrize('method', ['GET', 'DELETE'])
@pytest.mark.parametrize('job_id', ['not-a-uuid', '12345', JOB + 'ff',
                                    "'; DROP TABLE jobs; --"])
def test_non_uuid_job_ids_are_400(noauth, method, job_id):
    message = fault(noauth.request(method, '/jobs/%s' % job_id), 400)
    assert 'not a UUID' in message


@pytest.mark.parametrize('method', ['GET', 'DELETE'])
def test_unknown_jobs_are_404(noauth, method):
    assert JOB in fault(noauth.request(method, '/jobs/%s' % JOB), 404)


@pytest.mark.parametrize('query, words', [
    ('limit=0', 'limit'), ('limit=-1', 'limit'), ('limit=abc', 'limit'),
    ('limit=1.5', 'limit'), ('state=finished', 'state must be one of'),
    ('marker=xyz', 'not a UUID'), ('marker=%s' % JOB, 'not a job'),
    ('colour=blue', 'Unknown query parameter'),
    ('state=done&state=failed', 'more than once'),
    ('aggregate=', '1 to 255'),
    ('aggregate=a%00b', 'control characters'),
    ('aggregate=%00', 'control characters'),
    ('state=done%00', 'control characters'),
])
def test_bad_job_queries_are_400(noauth, query, words):
    assert words in fault(noauth.get('/jobs?' + query), 400)


@pytest.mark.parametrize('path', ['/v2/images', '/v2.1/v2/images'])
def test_image_lookup_is_glance_shaped(noauth, path):
    """nova --os-endpoint-override sends Glance's lookup here."""
    reply = noauth.get(path + '?id=in:%s' % JOB)
    assert reply.status_code == 200, reply.text
    assert reply.json()['images'] == []
    assert noauth.get(path + '?names=in:%s' % JOB).json()['images'] == []
    assert reply.json()['schema'] == '/v2/schemas/images'
    assert 'No image found with ID %s' % JOB in fault(
        noauth.get('%s/%s' % (path, JOB)), 404)


@pytest.mark.parametrize('query, words', [
    ('limit=5', "'limit' is not supported"),
    ('=false', "'' is not supported"),
    ('id=in:' + ','.join([JOB] * 101), 'at most 100'),
    ('name=a%00b', 'printable'),
    ('name=' + 'n' * 4001, 'in 4000 characters'),
    ('names=in:' + 'n' * 4001, 'in 4000 characters'),
])
def test_bad_image_lookups_are_400(noauth, query, words):
    assert words in fault(noauth.get('/v2/images?' + query), 400)


def test_path_not_utf8_is_400(noauth):
    reply = raw_request(noauth.url, (
        b'GET /os-aggregates/%ff%fe/images HTTP/1.1\r\nHost: x\r\n'
        b'Connection: close\r\n\r\n'))
    assert b' 400 ' in reply.split(b'\r\n')[0], reply[:300]
    assert b'UTF-8' in reply


def test_odd_aggregate_ids_are_404(noauth, world):
    image = world.add_image()
    for ref in ('x' * 300, '%00', 'api-all%0A', '-1', '1.0'):
        fault(noauth.post('/os-aggregates/%s/images' % ref,
                          json=cache_body(image)), 404)
        fault(noauth.get('/os-aggregates/%s/images' % ref), 404)


def test_trailing_slashes_are_fine(noauth):
    assert noauth.get('/jobs/').status_code == 200
    assert noauth.get('/os-aggregates/13/images/').status_code == 200


def test_http_1_1_keep_alive_not_required(noauth):
    parts = urlsplit(noauth.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request('GET', '/jobs?limit=1')
        assert conn.getresponse().status == 200
    finally:
        conn.close()


class _Broken:
    """A conductor client whose every call fails as given."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise self.exc
        return fail


@pytest.mark.parametrize('exc, code, words', [
    (RuntimeError('secret internals'), 500, 'Unexpected API error'),
    (messaging.MessagingTimeout('slow'), 503, 'No conductor answered'),
    (messaging.MessageDeliveryFailure('down'), 503, 'message bus'),
    (messaging.RemoteError('KeyError', 'boom', 'Traceback: ...'), 500,
     'conductor failed'),
    (exception.ServiceUnavailable(service='image catalog', reason='gone'),
     503, 'image catalog'),
    (exception.Conflict(reason='job is already done'), 409, 'already'),
])
def test_failures_behind_the_api_are_faults_without_traceback(
        exc, code, words, conf):
    conf.config(group='api', auth_strategy='noauth')
    application = api_app.build_app(lambda: _Broken(exc))
    for method, path, body in (
            ('POST', '/os-aggregates/1/images', cache_body(JOB)),
            ('GET', '/jobs', None), ('GET', '/jobs/%s' % JOB, None),
            ('DELETE', '/jobs/%s' % JOB, None),
            ('GET', '/os-aggregates/1/images', None)):
        req = webob.Request.blank(path, method=method)
        if body is not None:
            req.json_body = body
        resp = req.get_response(application)
        assert resp.status_int == code, (path, resp.text)
        assert words in resp.json_body[next(iter(resp.json_body))][
            'message']
        assert 'Traceback' not in resp.text
        assert 'secret internals' not in resp.text
        assert resp.headers['x-openstack-request-id'].startswith('req-')
