"""The real clients operators already have, unchanged, against precache.

python-novaclient and openstacksdk authenticate with Keystone and post to
precache-api (a process behind keystonemiddleware); the job then shows
up, and runs over RabbitMQ on every host.
"""

from __future__ import annotations

import openstack
import pytest
from novaclient import api_versions
from novaclient import client as nova_client

from tests.api.conftest import HOSTS


def _job_of(world, image):
    jobs = [job for job in world.store.list_jobs(limit=1000)
            if job.image_ids == [image]]
    assert len(jobs) == 1, jobs
    return world.wait(jobs[0].id)


@pytest.mark.parametrize('suffix', ['', '/v2.1'])
def test_novaclient_cache_images(api, keystone, world, suffix):
    image = world.add_image()
    nova = nova_client.Client('2.81', session=keystone.session('admin'),
                              endpoint_override=api.url + suffix)
    result = nova.aggregates.cache_images(11, [image])
    assert result.request_ids and result.request_ids[0].startswith('req-')
    # NOTE: Nova's body is empty; precache's names the job and novaclient
    # hands it over untouched.
    assert result['job']['image_ids'] == [image]
    job = _job_of(world, image)
    assert job.id == result['job']['id']
    assert sorted(r.host for r in job.results) == HOSTS
    assert {r.state.value for r in job.results} == {'cached'}


def test_novaclient_version_discovery(api, keystone):
    for suffix in ('', '/v2.1'):
        nova = nova_client.Client('2.1', session=keystone.session('admin'),
                                  endpoint_override=api.url + suffix)
        found = api_versions.discover_version(
            nova, api_versions.APIVersion('2.latest'))
        assert found == api_versions.APIVersion('2.81'), suffix


def test_novaclient_errors_surface(api, keystone, world):
    from novaclient import exceptions
    nova = nova_client.Client('2.81', session=keystone.session('admin'),
                              endpoint_override=api.url)
    with pytest.raises(exceptions.NotFound):
        nova.aggregates.cache_images(9999, [world.add_image()])
    image = world.add_image()
    with pytest.raises(exceptions.BadRequest) as info:
        nova.aggregates.cache_images(11, [image, image])
    assert 'Duplicate' in str(info.value)
    reader = nova_client.Client('2.81', session=keystone.session('reader'),
                                endpoint_override=api.url)
    with pytest.raises(exceptions.Forbidden):
        reader.aggregates.cache_images(11, [world.add_image()])


def test_openstacksdk_through_the_catalog(api, keystone, world):
    """The compute endpoint is ours, registered in Keystone's catalog."""
    image = world.add_image()
    conn = openstack.connection.Connection(
        auth_type='password', auth=keystone.auth_args('admin'),
        region_name='RegionOne', compute_api_version='2')
    try:
        assert conn.compute.aggregate_precache_images(
            'api-all', [image]) is None
    finally:
        conn.close()
    job = _job_of(world, image)
    assert sorted(r.host for r in job.results) == HOSTS


def test_openstacksdk_endpoint_override_at_root(api, keystone, world):
    image = world.add_image()
    conn = openstack.connection.Connection(
        auth_type='password', auth=keystone.auth_args('admin'),
        region_name='RegionOne', compute_endpoint_override=api.url)
    try:
        conn.compute.aggregate_precache_images(12, image)
        with pytest.raises(openstack.exceptions.NotFoundException):
            conn.compute.aggregate_precache_images(9999, image)
    finally:
        conn.close()
    assert [r.host for r in _job_of(world, image).results] == ['api-h2']
