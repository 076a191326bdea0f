"""precache-api under a real WSGI server (gunicorn) and on its own."""

from __future__ import annotations

import os

import pytest

from tests.api.conftest import (
    BIN,
    Served,
    api_conf,
    cache_body,
    fault,
    start_process,
    stop_process,
)
from tests.api.keystone import free_port


@pytest.fixture(scope='module')
def gunicorn(tmp_path_factory, world, keystone):
    folder = str(tmp_path_factory.mktemp('gunicorn'))
    port = free_port()
    conf = api_conf(folder, world, keystone, port)
    served = start_process(
        [os.path.join(BIN, 'gunicorn'), '--no-control-socket',
         '--worker-class', 'gthread', '--threads', '4', '--workers', '2',
         '--bind', '127.0.0.1:%d' % port, 'precache.wsgi.api:application'],
        os.path.join(folder, 'precache-api.log'),
        'http://127.0.0.1:%d' % port,
        env={'PRECACHE_CONFIG_FILES': conf,
             'XDG_CACHE_HOME': os.path.join(folder, 'xdg')})
    try:
        yield served
    finally:
        stop_process(served.process)
        assert 'Traceback' not in served.log_text()


def test_gunicorn_serves_the_api(gunicorn, world, admin_token):
    served = Served(gunicorn.url, {'X-Auth-Token': admin_token})
    image = world.add_image()
    resp = served.post('/os-aggregates/11/images', json=cache_body(image))
    assert resp.status_code == 202, resp.text
    job = world.wait(resp.json()['job']['id'])
    shown = served.get(resp.headers['Location'].replace(gunicorn.url, ''))
    assert shown.json()['job']['state'] == job.state.value == 'done'
    fault(Served(gunicorn.url, {}).get('/jobs'), 401)


def test_gunicorn_chunked_body_over_the_limit_is_413(gunicorn, admin_token):
    def chunks():
        for _ in range(200):
            yield b' ' * 1024
    resp = Served(gunicorn.url, {'X-Auth-Token': admin_token}).post(
        '/os-aggregates/11/images', data=chunks(),
        headers={'Content-Type': 'application/json'})
    fault(resp, 413)


def test_stdlib_server_logs_no_tracebacks(api):
    assert 'precache-api listening on http://127.0.0.1:' in api.log_text()
