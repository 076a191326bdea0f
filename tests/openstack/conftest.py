"""OpenStack integration tests: a real Glance, a Nova API double, cells.

Glance 33 runs from its own venv (built once into the cache folder, see
glance_server.py) under gunicorn on 127.0.0.1, without Keystone. Tests
reach it directly or through :class:`FlakyProxy`, which breaks streams,
answers 503 or refuses Range on demand.

For what callers may see, a second Glance runs behind a real Keystone 30
(tests/api/keystone.py; both once per session): users ``alice`` and
``bob``, members of projects ``project-a`` and ``project-b``, and the
admin; Glance is in the catalog as the ``image`` service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from keystoneauth1 import loading as ks_loading

from precache.clients import keystone
from tests.api import keystone as keystone_mod
from tests.openstack import glance_server
from tests.openstack.glance_server import Images, random_bytes
from tests.openstack.proxy import FlakyProxy

__all__ = ['Images', 'random_bytes']


@pytest.fixture(scope='session')
def glance(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[glance_server.GlanceServer]:
    with glance_server.running(str(tmp_path_factory.mktemp('glance'))
                               ) as server:
        yield server


@pytest.fixture
def images(glance: glance_server.GlanceServer) -> Images:
    return Images(glance.url)


@pytest.fixture
def proxy(glance: glance_server.GlanceServer) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(glance.port)
    yield flaky
    flaky.stop()


@pytest.fixture
def glance_conf(conf: Any, proxy: FlakyProxy) -> Iterator[Any]:
    """[glance] pointing at the proxy (in front of Glance), no Keystone."""
    keystone.reset()
    conf.config(group='glance', endpoint_override=proxy.url,
                retry_delay=0.01, num_retries=2, read_timeout=10)
    conf.config(group='agent', chunk_size=64)
    os.makedirs(conf.conf.agent.instances_path, exist_ok=True)
    yield conf
    keystone.reset()


# -- behind Keystone ------------------------------------------------------

#: user → project; both users have the ``member`` role there.
PEOPLE = {'alice': 'project-a', 'bob': 'project-b'}
PASSWORD = 'people-test-password'


class Identities:
    """Users of two projects and the admin in a Keystone: their tokens
    and project ids."""

    def __init__(self, server: keystone_mod.Keystone) -> None:
        self.server = server
        self.projects: dict[str, str] = {}
        admin = server.token('admin')
        role = self._call(admin, 'GET', '/roles?name=member')['roles'][0]
        for user, project in PEOPLE.items():
            project_id = self._call(admin, 'POST', '/projects', {
                'project': {'name': project, 'domain_id': 'default'}}
            )['project']['id']
            user_id = self._call(admin, 'POST', '/users', {
                'user': {'name': user, 'domain_id': 'default',
                         'password': PASSWORD}})['user']['id']
            self._call(admin, 'PUT', '/projects/%s/users/%s/roles/%s'
                       % (project_id, user_id, role['id']))
            self.projects[user] = project_id
        self.projects['admin'] = self._call(
            admin, 'GET', '/projects?name=admin')['projects'][0]['id']

    def _call(self, token: str, method: str, path: str,
              body: dict[str, Any] | None = None) -> Any:
        answer = requests.request(method, self.server.url + path, json=body,
                                  headers={'X-Auth-Token': token},
                                  timeout=30)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def token(self, user: str) -> str:
        """A fresh project-scoped token of ``user``."""
        if user == 'admin':
            return self.server.token('admin')
        answer = requests.post(self.server.url + '/auth/tokens', timeout=30,
                               json={'auth': {'identity': {
                                   'methods': ['password'], 'password': {
                                       'user': {'name': user,
                                                'domain': {'id': 'default'},
                                                'password': PASSWORD}}},
                                   'scope': {'project': {
                                       'id': self.projects[user]}}}})
        answer.raise_for_status()
        return answer.headers['X-Subject-Token']

    def caller(self, user: str, **extra: Any) -> dict[str, Any]:
        """What the API sends the conductor for ``user``."""
        return {'project_id': self.projects[user],
                'is_admin': user == 'admin',
                'auth_token': self.token(user), **extra}


@pytest.fixture(scope='session')
def keystone_server(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[keystone_mod.Keystone]:
    server = keystone_mod.start(str(tmp_path_factory.mktemp('keystone')))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope='session')
def people(keystone_server: keystone_mod.Keystone) -> Identities:
    return Identities(keystone_server)


@pytest.fixture(scope='session')
def glance_keystone(tmp_path_factory: pytest.TempPathFactory,
                    keystone_server: keystone_mod.Keystone
                    ) -> Iterator[glance_server.GlanceServer]:
    """Glance behind Keystone, in the catalog as ``image``."""
    auth = glance_server.KeystoneAuth(
        keystone_server.url, 'precache', keystone_server.password('precache'))
    with glance_server.running(str(tmp_path_factory.mktemp('glance-ks')),
                               keystone=auth) as server:
        keystone_server.register_service('image', 'glance', server.url)
        yield server


@pytest.fixture
def glance_keystone_conf(conf: Any, keystone_server: keystone_mod.Keystone,
                         glance_keystone: glance_server.GlanceServer
                         ) -> Iterator[Any]:
    """[glance] with service credentials (the admin, as devstack gives
    its service users) and Glance found in the catalog.

    The adapter options are set in full: the ``conf`` fixture's clean-up
    also resets the defaults precache.conf sets (service_type).
    """
    keystone.reset()
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('password'),
                       group='glance')
    conf.config(group='glance', auth_type='password',
                auth_url=keystone_server.url, username='admin',
                password=keystone_server.password('admin'),
                project_name='admin', user_domain_id='default',
                project_domain_id='default',
                region_name=keystone_mod.REGION, service_type='image',
                valid_interfaces=['public'], endpoint_override=None,
                retry_delay=0.01, num_retries=1)
    yield conf
    keystone.reset()
