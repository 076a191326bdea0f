"""The stock command-line clients, run as an operator runs them.

``openstack aggregate cache image`` (python-openstackclient) and
``nova aggregate-cache-images`` (python-novaclient) are run as processes
against precache-api behind a real Keystone, found through the catalog or
given as an endpoint override. Both look the aggregate up first
(``GET /os-aggregates/{id}``, ``GET /os-aggregates``) and resolve the
images in Glance, so a real Glance (behind the same Keystone) holds each
image under the id the conductor's catalog knows it by; nova given an
override sends that lookup to precache-api, which answers it from the
conductor's catalog.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.api import keystone as keystone_mod
from tests.api.conftest import BIN, HOSTS
from tests.openstack import glance_server


@pytest.fixture(scope='module')
def glance(tmp_path_factory, keystone):
    """Glance behind the API tests' Keystone, in its catalog."""
    auth = glance_server.KeystoneAuth(keystone.url, 'precache',
                                      keystone.password('precache'))
    with glance_server.running(str(tmp_path_factory.mktemp('glance')),
                               keystone=auth) as server:
        keystone.register_service('image', 'glance', server.url)
        yield server


@pytest.fixture
def image(world, glance, keystone):
    """An image in the conductor's catalog and, same id, in Glance."""
    image_id = world.add_image()
    with open(os.path.join(world.images_dir, '%s.raw' % image_id),
              'rb') as stream:
        data = stream.read()
    glance_server.Images(glance.url, keystone.token('admin')).create(
        data, name='cli-%s' % image_id[:8], id=image_id)
    return image_id


def run(command, keystone, tmp_path, *args, env=None):
    """A CLI as a process with the admin's OS_* variables."""
    environ = {
        'PATH': BIN + os.pathsep + os.environ.get('PATH', ''),
        'HOME': str(tmp_path), 'XDG_CACHE_HOME': str(tmp_path / 'cache'),
        'PYTHONPATH': os.environ.get('PYTHONPATH', ''),
        'OS_AUTH_URL': keystone.url, 'OS_IDENTITY_API_VERSION': '3',
        'OS_USERNAME': 'admin', 'OS_PASSWORD': keystone.password('admin'),
        'OS_PROJECT_NAME': 'admin', 'OS_USER_DOMAIN_ID': 'default',
        'OS_PROJECT_DOMAIN_ID': 'default',
        'OS_REGION_NAME': keystone_mod.REGION, **(env or {})}
    return subprocess.run([os.path.join(BIN, command), *args],
                          capture_output=True, text=True, env=environ,
                          timeout=180, check=False)


def jobs_of(world, image):
    return [job for job in world.store.list_jobs(limit=1000)
            if job.image_ids == [image]]


def assert_cached(world, image, hosts):
    jobs = jobs_of(world, image)
    assert len(jobs) == 1, jobs
    job = world.wait(jobs[0].id)
    assert sorted(r.host for r in job.results) == hosts
    assert {r.state.value for r in job.results} == {'cached'}


@pytest.mark.parametrize('aggregate, hosts, args, env', [
    ('api-all', HOSTS, [], {}),
    ('12', ['api-h2'], ['--os-compute-api-version', '2.81'], {}),
    ('11', HOSTS, [], {'OS_COMPUTE_ENDPOINT_OVERRIDE': '{api}'}),
    ('api-one', ['api-h2'], [],
     {'OS_COMPUTE_ENDPOINT_OVERRIDE': '{api}/v2.1'}),
], ids=['catalog-name', 'catalog-id', 'override-root-id',
        'override-v21-name'])
def test_openstack_aggregate_cache_image(api, keystone, world, image,
                                         tmp_path, aggregate, hosts, args,
                                         env):
    env = {k: v.format(api=api.url) for k, v in env.items()}
    done = run('openstack', keystone, tmp_path, *args, 'aggregate', 'cache',
               'image', aggregate, image, env=env)
    assert done.returncode == 0, done.stderr
    assert 'Traceback' not in done.stderr
    assert_cached(world, image, hosts)


@pytest.mark.parametrize('aggregate, hosts', [('api-all', HOSTS),
                                              ('12', ['api-h2'])])
def test_nova_aggregate_cache_images(api, keystone, world, image, tmp_path,
                                     aggregate, hosts):
    done = run('nova', keystone, tmp_path, '--os-compute-api-version',
               '2.81', 'aggregate-cache-images', aggregate, image)
    assert done.returncode == 0, done.stderr
    assert 'ERROR' not in done.stderr
    assert_cached(world, image, hosts)


def test_unknown_aggregate_is_named_and_nothing_is_posted(
        api, keystone, world, image, tmp_path):
    done = run('openstack', keystone, tmp_path, 'aggregate', 'cache',
               'image', 'no-such-aggregate', image)
    assert done.returncode == 1
    assert 'No Aggregate found for no-such-aggregate' in done.stderr
    done = run('nova', keystone, tmp_path, '--os-compute-api-version',
               '2.81', 'aggregate-cache-images', 'no-such-aggregate', image)
    assert done.returncode == 1
    assert "No aggregate with a name or ID of 'no-such-aggregate'" in \
        done.stderr
    assert jobs_of(world, image) == []


@pytest.mark.parametrize('aggregate, hosts, suffix', [
    ('11', HOSTS, ''), ('api-one', ['api-h2'], '/v2.1'),
], ids=['override-root-id', 'override-v21-name'])
def test_nova_endpoint_override(api, keystone, world, image, tmp_path,
                                aggregate, hosts, suffix):
    """nova's override also sends its image lookup (GET /v2/images?id=in:
    ...) to precache-api, which answers it from its image service."""
    done = run('nova', keystone, tmp_path, '--os-endpoint-override',
               api.url + suffix, '--os-compute-api-version', '2.81',
               'aggregate-cache-images', aggregate, image)
    assert done.returncode == 0, done.stderr
    assert 'ERROR' not in done.stderr
    assert_cached(world, image, hosts)


def test_nova_endpoint_override_unknown_image_posts_nothing(
        api, keystone, world, tmp_path, glance):
    """An image precache's image service does not know is nova's own
    error, and nothing is posted."""
    missing = '0d4f3a52-7c1e-4b8a-9f36-5e2d1c0b9a87'
    done = run('nova', keystone, tmp_path, '--os-endpoint-override',
               api.url, '--os-compute-api-version', '2.81',
               'aggregate-cache-images', '11', missing)
    assert done.returncode == 1
    assert 'Unable to find image(s): %s' % missing in done.stderr
    assert jobs_of(world, missing) == []
