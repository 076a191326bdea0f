"""What an API caller may see is Glance's answer to the caller's own token.

Real Keystone, real Glance behind it (Glance's default policies), real
RabbitMQ: ``precache-api`` (a process, keystonemiddleware) passes the
caller's token to a conductor whose image service is Glance; alice
(project-a) owns a private and a shared image, bob (project-b) is a
member of the shared one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from keystoneauth1 import loading as ks_loading

from precache import exception, rpc
from precache.clients import glance as glance_client
from precache.clients import keystone
from precache.conductor.inventory import StaticInventory
from precache.conductor.service import ConductorService
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore
from tests.api import keystone as keystone_mod
from tests.functional.harness import (
    private_vhost,
    script,
)
from tests.openstack.conftest import Identities
from tests.openstack.glance_server import GlanceServer, Images, free_port
from tests.openstack.proxy import FlakyProxy

pytestmark = pytest.mark.usefixtures('glance_keystone_conf')

AGGREGATE = {'id': 31, 'name': 'visibility', 'hosts': []}


class Owned:
    """alice's images: ``private``, and ``shared`` with bob's project."""

    def __init__(self, glance: GlanceServer, people: Identities) -> None:
        alice = Images(glance.url, token=people.token('alice'))
        self.private = alice.create(b'private bytes', name='private',
                                    visibility='private')['id']
        self.shared = alice.create(b'shared bytes', name='shared',
                                   visibility='shared')['id']
        alice.share(self.shared, people.projects['bob'])


@pytest.fixture(scope='module')
def owned(glance_keystone: GlanceServer, people: Identities) -> Owned:
    return Owned(glance_keystone, people)


def _validate(image_ids: list[str], caller: dict[str, Any] | None
              ) -> list[str]:
    specs = glance_client.GlanceImageService().validate(image_ids,
                                                        caller=caller)
    return [spec.id for spec in specs]


def test_private_image_is_not_found_for_another_project(owned, people):
    with pytest.raises(exception.ImageNotFound, match=owned.private):
        _validate([owned.private], people.caller('bob'))
    assert _validate([owned.private], people.caller('alice')) == [
        owned.private]
    assert _validate([owned.private], people.caller('admin')) == [
        owned.private]


def test_glance_decides_from_the_token_not_the_callers_fields(owned,
                                                              people):
    """bob's token with alice's project and is_admin claimed: still 404,
    so no rule of ours let it through."""
    liar = people.caller('bob', project_id=people.projects['alice'],
                         is_admin=True)
    with pytest.raises(exception.ImageNotFound, match=owned.private):
        _validate([owned.private], liar)


def test_shared_image_is_visible_to_its_member(owned, people):
    bob = people.caller('bob')
    assert _validate([owned.shared], bob) == [owned.shared]
    # One list request for both (bob's list shows neither: the share is
    # not accepted), then a GET each: the private one is 404.
    with pytest.raises(exception.ImageNotFound, match=owned.private):
        _validate([owned.shared, owned.private], bob)
    assert _validate([owned.private, owned.shared],
                     people.caller('alice')) == [owned.private,
                                                 owned.shared]


@pytest.fixture
def proxy(glance_keystone: GlanceServer, conf: Any) -> Iterator[FlakyProxy]:
    """Glance reached through a proxy that records the headers."""
    recorder = FlakyProxy(glance_keystone.port)
    conf.config(group='glance', endpoint_override=recorder.url)
    yield recorder
    recorder.stop()


def test_service_token_travels_with_the_callers(owned, people, conf,
                                                keystone_server, proxy):
    """[service_user] send_service_user_token: Glance still answers for
    the caller (the service token only extends an expiring one)."""
    keystone.reset()
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('password'),
                       group='service_user')
    conf.config(group='service_user', send_service_user_token=True,
                auth_type='password', auth_url=keystone_server.url,
                username='precache',
                password=keystone_server.password('precache'),
                project_name='service', user_domain_id='default',
                project_domain_id='default')
    bob = people.caller('bob')
    assert _validate([owned.shared], bob) == [owned.shared]
    with pytest.raises(exception.ImageNotFound):
        _validate([owned.private], people.caller('bob'))
    assert proxy.headers[0]['x-auth-token'] == bob['auth_token']
    service_tokens = {h.get('x-service-token') for h in proxy.headers}
    assert None not in service_tokens
    assert bob['auth_token'] not in service_tokens


def test_caller_without_token_gets_glances_rule_applied_here(owned,
                                                             people):
    """A caller from an API older than RPC 1.4 (no token): the service
    credentials read the image and its members; the rule is ours."""
    bob = {'project_id': people.projects['bob'], 'is_admin': False}
    with pytest.raises(exception.ImageNotFound, match=owned.private):
        _validate([owned.private], bob)
    assert _validate([owned.shared], bob) == [owned.shared]
    alice = {'project_id': people.projects['alice'], 'is_admin': False}
    assert _validate([owned.private], alice) == [owned.private]
    assert _validate([owned.private], None) == [owned.private]


# -- through precache-api ---------------------------------------------------


@pytest.fixture(scope='module')
def transport_url() -> Iterator[str]:
    with private_vhost('precache-visibility') as url:
        yield url


@pytest.fixture
def conductor(tmp_path, transport_url: str, glance_keystone_conf: Any
              ) -> Iterator[ConductorService]:
    """A conductor in this process whose image service is Glance (it
    checks [glance] at start)."""
    folder = str(tmp_path)
    inventory = os.path.join(folder, 'inventory.yaml')
    with open(inventory, 'w') as out:
        yaml.safe_dump({'cells': {}, 'aggregates': [AGGREGATE]}, out)
    db_url = 'sqlite:///%s' % os.path.join(folder, 'jobs.sqlite')
    migration.upgrade(db_url)
    store = JobStore(db_url)
    service = ConductorService(
        rpc.get_transport(CONF, transport_url), host='visibility-conductor',
        store=store, inventory=StaticInventory(inventory),
        image_service=glance_client.GlanceImageService())
    service.start()
    try:
        yield service
    finally:
        service.stop()
        service.wait()
        store.close()
        rpc.cleanup()


@pytest.fixture(scope='module')
def api(tmp_path_factory: pytest.TempPathFactory, transport_url: str,
        keystone_server: keystone_mod.Keystone) -> Iterator[str]:
    """``precache-api`` behind keystonemiddleware; members may create
    jobs (policy), so what they may see is up to Glance."""
    folder = str(tmp_path_factory.mktemp('visibility-api'))
    policy = os.path.join(folder, 'policy.yaml')
    with open(policy, 'w') as out:
        out.write('"compute:aggregates:images": "role:member"\n')
    port = free_port()
    config = os.path.join(folder, 'precache-api.conf')
    sections = {
        'DEFAULT': {'transport_url': transport_url,
                    'log_file': os.path.join(folder, 'precache-api.log')},
        'api': {'host_ip': '127.0.0.1', 'port': port,
                'auth_strategy': 'keystone', 'rpc_timeout': 30},
        'oslo_policy': {'policy_file': policy},
        'keystone_authtoken': {
            'www_authenticate_uri': keystone_server.url,
            'auth_url': keystone_server.url, 'auth_type': 'password',
            'username': 'precache',
            'password': keystone_server.password('precache'),
            'project_name': 'service', 'user_domain_id': 'default',
            'project_domain_id': 'default',
            'region_name': keystone_mod.REGION}}
    with open(config, 'w') as out:
        for section, options in sections.items():
            out.write('[%s]\n' % section)
            out.writelines('%s = %s\n' % item for item in options.items())
    url = 'http://127.0.0.1:%d' % port
    with open(os.path.join(folder, 'stdout.log'), 'ab') as output:
        process = subprocess.Popen(
            [script('precache-api'), '--config-file', config],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, 'precache-api exited; see %s' \
                % folder
            try:
                if requests.get(url + '/', timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, 'precache-api not ready'
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    with open(os.path.join(folder, 'precache-api.log')) as stream:
        log = stream.read()
    assert 'Traceback' not in log, log[-3000:]


def _post(api: str, token: str, image_id: str) -> requests.Response:
    return requests.post(
        '%s/os-aggregates/%d/images' % (api, AGGREGATE['id']), timeout=60,
        json={'cache': [{'id': image_id}]},
        headers={'X-Auth-Token': token,
                 'X-OpenStack-Nova-API-Version': '2.81'})


def test_api_validates_with_the_callers_token(api, conductor, owned,
                                              people, proxy):
    before = len(conductor.store.list_jobs(limit=1000))
    bob = people.token('bob')
    refused = _post(api, bob, owned.private)
    # NOTE: Glance's 404 is Nova's 400 for this route (the contract).
    assert refused.status_code == 400, refused.text
    assert owned.private in refused.json()['badRequest']['message']
    assert len(conductor.store.list_jobs(limit=1000)) == before
    # Glance answered bob's own token: one GET, nothing else asked.
    assert [line for line, _ in proxy.requests] == [
        'GET /v2/images/%s HTTP/1.1' % owned.private]
    assert proxy.headers[0]['x-auth-token'] == bob

    for user, image in (('alice', owned.private), ('admin', owned.private),
                        ('bob', owned.shared)):
        accepted = _post(api, people.token(user), image)
        assert accepted.status_code == 202, (user, accepted.text)
        assert accepted.json()['job']['image_ids'] == [image]
    assert len(conductor.store.list_jobs(limit=1000)) == before + 3


def test_image_lookup_shows_what_glance_shows_the_caller(owned, people):
    """What precache-api answers nova's image lookup with (conductor
    find_images): Glance's answer to the caller's own token."""
    from precache.conductor import images as lookups

    def ids(caller, **filters):
        return sorted(image['id'] for image in lookups.find(
            glance_client.GlanceImageService(), caller=caller, **filters))

    both = [owned.private, owned.shared]
    assert ids(people.caller('bob'), ids=both) == [owned.shared]
    assert ids(people.caller('alice'), ids=both) == sorted(both)
    assert ids(people.caller('alice'), names=['private']) == [owned.private]
    assert ids(people.caller('bob'), names=['private']) == []
    # novaclient's names=in:…: a property for Glance, which no image has.
    assert ids(people.caller('alice'),
               properties={'names': 'in:private'}) == []
    shown = lookups.find(glance_client.GlanceImageService(),
                         ids=[owned.private], caller=people.caller('alice'))
    assert 'locations' not in shown[0] and 'direct_url' not in shown[0]
    assert (shown[0]['visibility'], shown[0]['status']) == ('private',
                                                            'active')
