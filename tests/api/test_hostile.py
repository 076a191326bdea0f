"""Hostile input: a 400 always, and a server no client can freeze.

Found by fuzzing the API from its own OpenAPI document: a NUL byte in a
query (PostgreSQL refuses it: 500), a 100 KB body of nested brackets
(json's recursion limit: 500), and forty clients that announce a body
and never send it (every request slot held forever: the server froze).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from precache.cmd import api as api_cmd
from tests.api.conftest import Served, fault

STALLED = 40


@pytest.fixture
def as_admin(api, admin_token):
    return Served(api.url, {'X-Auth-Token': admin_token})


@pytest.mark.parametrize('query', ['aggregate=a%00b', 'aggregate=%00',
                                   'marker=%00', 'state=%00done'])
def test_nul_byte_in_a_query_is_400(as_admin, query):
    message = fault(as_admin.get('/jobs?' + query), 400)
    assert 'control characters' in message or 'not a UUID' in message


@pytest.mark.parametrize('opening', [b'[', b'{"a":'])
def test_100kb_of_nesting_is_400(as_admin, world, opening):
    before = world.job_count()
    data = opening * (100 * 1024 // len(opening))
    message = fault(as_admin.post('/os-aggregates/11/images', data=data,
                                  headers={'Content-Type':
                                           'application/json'}), 400)
    assert 'nests' in message
    assert world.job_count() == before


def test_nesting_below_the_parser_limit_is_400_too(as_admin):
    """Deep enough to trouble a validator, not the JSON parser."""
    inner = '[' * 200 + ']' * 200
    data = '{"cache": [{"id": %s}]}' % inner
    message = fault(as_admin.post('/os-aggregates/11/images', data=data,
                                  headers={'Content-Type':
                                           'application/json'}), 400)
    assert 'more than 32 deep' in message


def test_an_overlong_request_line_is_a_json_414(as_admin):
    """Refused by the server before the application, in the API's own
    fault body (schemathesis found http.server's HTML page here)."""
    resp = as_admin.get('/v2/images?id=' + 'x' * 70000)
    assert resp.headers['Content-Type'] == 'application/json'
    assert fault(resp, 414) == 'Request-URI Too Long'


def _stall(url, count, path='/os-aggregates/11/images'):
    """``count`` connections that announce a body and send none."""
    parts = urlsplit(url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((parts.hostname, parts.port), 10)
        sock.sendall(b'POST %s HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Type: application/json\r\n'
                     b'Content-Length: 100\r\n\r\n' % path.encode())
        sockets.append(sock)
    return sockets


def test_stalled_clients_do_not_freeze_precache_api(api, admin_token):
    """More stalled clients than [api] server_threads (32), against the
    precache-api process: everyone else is served at once."""
    sockets = _stall(api.url, STALLED)
    try:
        time.sleep(0.5)
        for path in ('/', '/jobs?limit=1', '/os-aggregates'):
            started = time.monotonic()
            resp = requests.get(api.url + path, timeout=10,
                                headers={'X-Auth-Token': admin_token})
            assert resp.status_code == 200, resp.text
            assert time.monotonic() - started < 3, path
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def strict_server(noauth, conf):
    """The built-in server with a 2 s request deadline and 4 slots."""
    conf.config(group='api', client_timeout=2, max_connections=64)
    server = api_cmd.make_server(noauth.app, '127.0.0.1', 0, threads=4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_within(sock, seconds):
    sock.settimeout(seconds)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(4096):
            pass
    return True


def test_stalled_clients_are_closed_after_client_timeout(strict_server):
    sockets = _stall(strict_server, STALLED)
    try:
        started = time.monotonic()
        resp = requests.get(strict_server + '/jobs?limit=1', timeout=10)
        assert resp.status_code == 200
        assert time.monotonic() - started < 1.5
        for sock in sockets:
            assert _closed_within(sock, 5)
        assert time.monotonic() - started < 5
    finally:
        for sock in sockets:
            sock.close()


def test_a_client_trickling_bytes_is_cut_at_the_deadline(strict_server):
    """A per-read timeout alone would let one byte a second go on."""
    parts = urlsplit(strict_server)
    with socket.create_connection((parts.hostname, parts.port), 10) as sock:
        started = time.monotonic()
        request = b'GET /jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ' + b'a' * 50
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        assert _closed_within(sock, 5)
        assert time.monotonic() - started < 5


def test_a_stalled_body_takes_no_slot_from_others(strict_server):
    """With every one of the 4 slots' worth of clients stalled in their
    body, a complete request still runs."""
    sockets = _stall(strict_server, 8)
    try:
        resp = requests.post(strict_server + '/os-aggregates/9999/images',
                             json={'cache': [{'id': 'x'}]}, timeout=5)
        assert resp.status_code == 400, resp.text
    finally:
        for sock in sockets:
            sock.close()
