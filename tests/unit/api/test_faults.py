"""Faults: every precache exception, bus error and HTTP error becomes
Nova's JSON fault with the right code, and no traceback leaves."""

from __future__ import annotations

import inspect
import json

import oslo_messaging as messaging
import pytest
import webob
import webob.exc

from precache import exception
from precache.api import faults
from tests.unit.api.conftest import (
    IMAGE_ID,
    JOB_ID,
    cache_body,
    fault,
    fault_kind,
)

#: Every class of precache.exception: its code and Nova's fault name.
EXPECTED = {
    'PrecacheException': (500, 'computeFault'),
    'Invalid': (400, 'badRequest'),
    'InvalidImageList': (400, 'badRequest'),
    'ImageNotUsable': (400, 'badRequest'),
    'InvalidOption': (400, 'badRequest'),
    'InventoryInvalid': (400, 'badRequest'),
    'ConfigInvalid': (400, 'badRequest'),
    'MalformedNotification': (400, 'badRequest'),
    'NotFound': (404, 'itemNotFound'),
    'AggregateNotFound': (404, 'itemNotFound'),
    'ImageNotFound': (404, 'itemNotFound'),
    'JobNotFound': (404, 'itemNotFound'),
    'Conflict': (409, 'conflictingRequest'),
    'InvalidStateTransition': (409, 'conflictingRequest'),
    'LeaseLost': (409, 'conflictingRequest'),
    'JobStoreError': (500, 'computeFault'),
    'TemporaryFailure': (503, 'serviceUnavailable'),
    'ServiceUnavailable': (503, 'serviceUnavailable'),
    'AgentNotResponding': (503, 'serviceUnavailable'),
    'BackendError': (500, 'computeFault'),
    'ImageFetchFailed': (500, 'computeFault'),
    'ImageVerificationFailed': (500, 'computeFault'),
    'CacheStoreError': (500, 'computeFault'),
}


def _classes() -> dict[str, type[exception.PrecacheException]]:
    return {name: cls for name, cls in
            inspect.getmembers(exception, inspect.isclass)
            if issubclass(cls, exception.PrecacheException)}


def test_every_exception_class_has_an_expected_fault():
    assert set(_classes()) == set(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_exception_from_the_conductor_is_its_fault(client, conductor, name):
    conductor.fail_with = _classes()[name]('%s happened' % name)
    code, kind = EXPECTED[name]
    resp = client('GET', '/jobs/%s' % JOB_ID)
    assert fault(resp, code) == '%s happened' % name
    assert fault_kind(resp) == kind
    assert resp.json_body == {kind: {'code': code,
                                     'message': '%s happened' % name}}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_from_exception_maps_each_class(name):
    exc = _classes()[name]('boom')
    resp = faults.from_exception(exc, 'req-1')
    code, kind = EXPECTED[name]
    assert resp.status_int == code
    assert json.loads(resp.body) == {kind: {'code': code,
                                            'message': 'boom'}}


def test_missing_image_on_post_is_nova_s_400(client, conductor):
    conductor.fail_with = exception.ImageNotFound(image=IMAGE_ID)
    resp = client('POST', '/os-aggregates/11/images',
                  json=cache_body(IMAGE_ID))
    assert fault(resp, 400) == 'Image %s could not be found.' % IMAGE_ID
    assert fault_kind(resp) == 'badRequest'


def test_missing_aggregate_is_404(client, conductor):
    conductor.fail_with = exception.AggregateNotFound(aggregate='nope')
    resp = client('POST', '/os-aggregates/nope/images',
                  json=cache_body(IMAGE_ID))
    assert fault(resp, 404) == 'Aggregate nope could not be found.'


def test_only_the_first_line_of_a_message_is_shown(client, conductor):
    conductor.fail_with = exception.Conflict(
        'Job is done.\nTraceback (most recent call last):\n  File x')
    assert fault(client('DELETE', '/jobs/%s' % JOB_ID), 409) == \
        'Job is done.'


@pytest.mark.parametrize('exc, code, words, retry_after', [
    (messaging.MessagingTimeout('slow'), 503, 'No conductor answered', '5'),
    (messaging.MessageDeliveryFailure('down'), 503, 'message bus', '5'),
    (messaging.RemoteError('KeyError', 'boom', 'Traceback: ...'), 500,
     'The conductor failed (KeyError)', None),
    (RuntimeError('secret internals'), 500, 'Unexpected API error', None),
])
def test_bus_and_unexpected_errors(client, conductor, exc, code, words,
                                   retry_after):
    conductor.fail_with = exc
    resp = client('GET', '/jobs')
    message = fault(resp, code)
    assert words in message
    assert 'secret internals' not in resp.text
    assert resp.headers.get('Retry-After') == retry_after
    if code == 500:
        # NOTE: the request id finds the log line.
        assert resp.headers['x-openstack-request-id'] in message


def test_webob_errors_keep_their_headers():
    resp = faults.from_exception(webob.exc.HTTPMethodNotAllowed(
        detail='no', headers={'Allow': 'GET', 'X-Other': 'dropped'}))
    assert resp.headers['Allow'] == 'GET'
    assert 'X-Other' not in resp.headers
    assert resp.json_body == {'badMethod': {'code': 405, 'message': 'no'}}


def test_unicode_errors_are_400():
    resp = faults.from_exception(UnicodeDecodeError('utf-8', b'\xff', 0, 1,
                                                    'bad'))
    assert resp.json_body['badRequest']['message'] == \
        'The request is not valid UTF-8.'


@pytest.mark.parametrize('code, kind', sorted(faults.FAULT_NAMES.items()) +
                         [(418, 'computeFault'), (500, 'computeFault')])
def test_body_names_the_kind_as_nova(code, kind):
    assert faults.body(code, 'm') == {kind: {'code': code, 'message': 'm'}}


# -- JsonErrors: errors made outside the API proper ---------------------------


def _foreign(status: str, body: bytes, content_type: str = 'text/html',
             **headers: str) -> faults.JsonErrors:
    def app(environ, start_response):
        start_response(status, [('Content-Type', content_type),
                                *headers.items()])
        return [body]
    return faults.JsonErrors(app)


def test_foreign_html_error_is_rewritten_keeping_auth_header():
    app = _foreign('401 Unauthorized',
                   b'<html><body><h1>401 Unauthorized</h1>'
                   b'Authentication required &amp; missing</body></html>',
                   **{'WWW-Authenticate': "Keystone uri='http://k'",
                      'X-Secret': 'x'})
    resp = webob.Request.blank('/jobs').get_response(app)
    assert resp.json_body == {'unauthorized': {
        'code': 401, 'message': 'Authentication required & missing'}}
    assert resp.headers['WWW-Authenticate'] == "Keystone uri='http://k'"
    assert 'X-Secret' not in resp.headers


def test_foreign_json_error_message_is_kept():
    app = _foreign('413 Request Entity Too Large',
                   b'{"error": {"message": "too big"}}', 'application/json')
    resp = webob.Request.blank('/jobs').get_response(app)
    assert resp.json_body == {'overLimit': {'code': 413,
                                            'message': 'too big'}}


def test_our_faults_and_successes_pass_unchanged():
    ours = json.dumps(faults.body(409, 'mine')).encode()
    for status, body in (('409 Conflict', ours), ('200 OK', b'<p>ok</p>')):
        resp = webob.Request.blank('/').get_response(
            _foreign(status, body))
        assert resp.body == body


def test_an_escaping_exception_is_a_500_fault():
    def app(environ, start_response):
        raise RuntimeError('secret internals')
    resp = webob.Request.blank('/').get_response(faults.JsonErrors(app))
    assert resp.status_int == 500
    assert 'secret internals' not in resp.text
    assert 'Unexpected API error' in resp.json_body['computeFault'][
        'message']
