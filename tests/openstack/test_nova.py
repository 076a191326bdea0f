"""Inventory ``nova``: python-novaclient against a Nova API double.

Nova itself does not run here. The double answers version discovery and
``os-aggregates`` as the Nova API reference shows them (versions document
at the root, the v2.1 version document, microversion headers, 404
``itemNotFound``, 400 for a non-integer id), and can answer 503 on demand.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from precache import exception
from precache.clients import keystone
from precache.conductor.nova_inventory import NovaInventory

MAX_VERSION = '2.96'
AGGREGATES = [
    {'availability_zone': 'london', 'created_at': '2026-11-01T10:00:00.000000',
     'deleted': False, 'deleted_at': None, 'hosts': ['cmp-1', 'cmp-2'],
     'id': 1, 'metadata': {'availability_zone': 'london',
                           'precache:images': 'cirros'},
     'name': 'gpu', 'updated_at': None,
     'uuid': '6ba28ba7-f29b-45cc-a30b-6e3a40c2fb14'},
    {'availability_zone': None, 'created_at': '2026-11-02T10:00:00.000000',
     'deleted': False, 'deleted_at': None, 'hosts': [], 'id': 7,
     'metadata': {}, 'name': 'empty', 'updated_at': None,
     'uuid': 'c0a0b1f5-0d1f-4b43-9b9a-ff1d3c0c2b7e'},
]


class NovaDouble(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, version: str | None = None
              ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        if version:
            self.send_header('OpenStack-API-Version', 'compute ' + version)
            self.send_header('X-OpenStack-Nova-API-Version', version)
            self.send_header('Vary', 'OpenStack-API-Version, '
                             'X-OpenStack-Nova-API-Version')
        self.end_headers()
        self.wfile.write(data)

    def _links(self, path: str) -> list[dict[str, str]]:
        return [{'href': 'http://%s:%d%s' % (*self.server.server_address,
                                            path), 'rel': 'self'}]

    def _version(self) -> dict[str, Any]:
        return {'id': 'v2.1', 'status': 'CURRENT', 'version': MAX_VERSION,
                'min_version': '2.1', 'updated': '2013-07-23T11:33:21Z',
                'links': self._links('/v2.1/')}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        requested = self.headers.get('X-OpenStack-Nova-API-Version')
        self.server.seen.append((self.path, requested))
        if self.server.fail_5xx:
            self.server.fail_5xx -= 1
            self._send(503, {'computeFault': {
                'code': 503, 'message': 'Service Unavailable'}})
            return
        path = self.path.rstrip('/')
        if path == '':
            self._send(300, {'versions': [
                {'id': 'v2.0', 'status': 'SUPPORTED', 'version': '',
                 'min_version': '', 'updated': '2011-01-21T11:33:21Z',
                 'links': self._links('/v2/')},
                self._version()]})
            return
        if path == '/v2.1':
            self._send(200, {'version': {
                **self._version(),
                'media-types': [{
                    'base': 'application/json',
                    'type': 'application/vnd.openstack.compute+json;'
                            'version=2.1'}]}})
            return
        version = requested or '2.1'
        shown = [dict(a) for a in AGGREGATES]
        if tuple(map(int, version.split('.'))) < (2, 41):
            for aggregate in shown:
                aggregate.pop('uuid')
        if path == '/v2.1/os-aggregates':
            self._send(200, {'aggregates': shown}, version)
            return
        match = re.fullmatch(r'/v2\.1/os-aggregates/([^/]+)', path)
        if match:
            ref = match.group(1)
            if not ref.isdigit():
                self._send(400, {'badRequest': {
                    'code': 400, 'message': 'Invalid id provided, id '
                    'must be an integer'}}, version)
                return
            for aggregate in shown:
                if aggregate['id'] == int(ref):
                    self._send(200, {'aggregate': aggregate}, version)
                    return
            self._send(404, {'itemNotFound': {
                'code': 404, 'message': 'Aggregate %s could not be found.'
                % ref}}, version)
            return
        self._send(404, {'itemNotFound': {'code': 404,
                                          'message': 'Not found'}})


@pytest.fixture
def nova(conf: Any) -> Iterator[Any]:
    server = ThreadingHTTPServer(('127.0.0.1', 0), NovaDouble)
    server.seen, server.fail_5xx = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    keystone.reset()
    conf.config(group='nova', endpoint_override='http://127.0.0.1:%d/v2.1'
                % server.server_address[1], num_retries=2, retry_delay=0.01)
    yield server
    server.shutdown()
    server.server_close()
    keystone.reset()


def test_aggregate_by_id_uuid_and_name(nova):
    inventory = NovaInventory()
    inventory.check()
    by_id = inventory.get_aggregate('1')
    assert by_id.name == 'gpu'
    assert by_id.hosts == ('cmp-1', 'cmp-2')
    assert by_id.uuid == AGGREGATES[0]['uuid']
    assert by_id.metadata == {'availability_zone': 'london',
                              'precache:images': 'cirros'}
    assert inventory.get_aggregate(AGGREGATES[0]['uuid']) == by_id
    assert inventory.get_aggregate('gpu') == by_id
    assert inventory.get_aggregate('empty').hosts == ()
    assert inventory.cell_of('cmp-1') is None
    # discovery read the version document, then every call asked 2.41
    assert nova.seen[0][0] == '/v2.1'
    assert {v for _, v in nova.seen[1:]} == {'2.41'}
    assert ('/v2.1/os-aggregates/1', '2.41') in nova.seen


def test_unknown_aggregate(nova):
    inventory = NovaInventory()
    for ref in ('99', 'no-such-name',
                '00000000-0000-0000-0000-000000000000'):
        with pytest.raises(exception.AggregateNotFound, match=ref):
            inventory.get_aggregate(ref)


def test_nova_5xx_is_retried_then_names_the_service(nova):
    inventory = NovaInventory()
    inventory.check()
    nova.fail_5xx = 2
    assert inventory.get_aggregate('1').name == 'gpu'
    nova.fail_5xx = 3
    with pytest.raises(exception.ServiceUnavailable) as caught:
        inventory.get_aggregate('gpu')
    text = str(caught.value)
    assert '[nova]' in text and 'after 3 attempt(s)' in text
    assert '503' in text


def test_nova_unreachable_at_start(conf):
    keystone.reset()
    conf.config(group='nova', endpoint_override='http://127.0.0.1:9/v2.1',
                num_retries=0)
    with pytest.raises(exception.ServiceUnavailable) as caught:
        NovaInventory().check()
    assert '[nova] (endpoint http://127.0.0.1:9/v2.1)' in str(caught.value)
