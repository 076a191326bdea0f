"""RPC APIs: versions in sync, and both clients against real servers."""

from __future__ import annotations

import os
import uuid

import oslo_messaging as messaging
import pytest

from precache import objects, version
from precache.agent.manager import AgentManager
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor.manager import ConductorManager
from precache.conductor.rpcapi import ConductorAPI

State = objects.HostImageState


def test_versions_in_sync():
    assert AgentAPI.RPC_API_VERSION == AgentManager.RPC_API_VERSION
    assert ConductorAPI.RPC_API_VERSION == ConductorManager.RPC_API_VERSION
    assert AgentManager.target.version == AgentManager.RPC_API_VERSION
    assert ConductorManager.target.version == \
        ConductorManager.RPC_API_VERSION


def test_agent_ping(cloud):
    info = AgentAPI(cloud.transport).ping({'request_id': 'req-ping'},
                                          'u-h3', timeout=5)
    store = cloud.stores['u-h3']
    assert info['host'] == 'u-h3'
    assert info['cell'] == 'cell2'
    assert info['version'] == version.version_string
    assert info['rpc_version'] == AgentAPI.RPC_API_VERSION
    assert info['backends'] == ['file']
    assert info['store']['kind'] == 'file'
    assert info['store']['path'] == store.base_dir
    assert info['store']['free_bytes'] > 0


def test_agent_ping_of_nobody_times_out(cloud):
    with pytest.raises(messaging.MessagingTimeout):
        AgentAPI(cloud.transport).ping({}, 'u-nobody', timeout=1)


def test_agent_cache_images(cloud):
    good, nowhere = cloud.add_image(), cloud.add_image(located=False)
    specs = LocalImageService(cloud.catalog).validate([good, nowhere])
    api = AgentAPI(cloud.transport)
    results = api.cache_images({'job_id': 'j'}, 'u-h1', specs, timeout=30,
                               call_monitor_timeout=10)
    assert [r.image_id for r in results] == [good, nowhere]
    assert [r.state for r in results] == [State.CACHED, State.UNSUPPORTED]
    assert all(isinstance(r, objects.HostImageResult) for r in results)
    assert results[0].host == 'u-h1'
    assert results[0].bytes == os.path.getsize(cloud.image_path(good))
    assert results[0].started_at.tzinfo is not None
    again = api.cache_images({}, 'u-h1', specs[:1], timeout=30,
                             call_monitor_timeout=10)
    assert [r.state for r in again] == [State.EXISTING]


def test_conductor_api_round_trip(cloud):
    image_id = cloud.add_image()
    accepted = cloud.api.cache_images({}, 'one', [image_id])
    assert isinstance(accepted, objects.Job)
    job = cloud.wait(accepted.id)
    assert job.results[0].state is State.CACHED
    listed = cloud.api.list_jobs({}, aggregate='one', state='done',
                                 limit=1000)
    assert accepted.id in [j.id for j in listed]
    page = cloud.api.list_jobs({}, limit=1)
    assert len(page) == 1
    # Newest first: nothing was accepted after this test's job.
    assert page[0].id == accepted.id


class OldConductor:
    """A conductor that speaks 1.2: what an upgrade finds still running."""

    target = messaging.Target(version='1.2')

    def cache_images(self, ctxt, aggregate, image_ids, options=None,
                     caller=None):
        return {'id': 'j-old', 'aggregate': aggregate,
                'image_ids': image_ids, 'state': 'pending',
                'options': options or {}}


def test_new_options_are_sent_at_the_version_that_added_them(conf):
    from precache import rpc

    # NOTE: oslo.messaging's fake driver: the in-process memory broker
    # shares queues by name, and the session's conductor listens on the
    # same topic. Version negotiation is the dispatcher's, the same here.
    conf.config(control_exchange='precache-old-%s' % uuid.uuid4().hex[:8])
    transport = rpc.get_transport(conf.conf,
                                  'fake:///old-%s' % uuid.uuid4().hex[:8])
    server = rpc.get_server(transport, rpc.CONDUCTOR_TOPIC, 'old',
                            [OldConductor()])
    server.start()
    try:
        api = ConductorAPI(transport, timeout=10)
        job = api.cache_images({}, 'agg', ['i'],
                               {'max_concurrent_hosts': 2},
                               caller={'project_id': 'p'})
        assert job.id == 'j-old'
        # An old conductor refuses what it cannot honour, instead of
        # quietly ignoring a deadline or a host list.
        for options in ({'dedupe': True}, {'hosts': ['h1']},
                        {'window': 60}):
            with pytest.raises(messaging.UnsupportedVersion,
                               match='version 1.3'):
                api.cache_images({}, 'agg', ['i'], options)
        with pytest.raises(messaging.UnsupportedVersion, match='version 1.4'):
            api.cache_images({}, 'agg', ['i'],
                             caller={'project_id': 'p', 'auth_token': 't'})
    finally:
        server.stop()
        server.wait()


def test_aggregates_from_the_inventory(cloud):
    """1.5: what precache-api shows as Nova's GET /os-aggregates."""
    from precache import exception
    from tests.unit.conftest import AGGREGATES

    listed = cloud.api.list_aggregates({})
    assert [a['name'] for a in listed] == [a['name'] for a in AGGREGATES]
    one = cloud.api.get_aggregate({}, 'one')
    assert one == listed[[a['name'] for a in listed].index('one')]
    assert (one['id'], one['hosts']) == ('3', ['u-h2'])
    assert one['created_at'] and one['updated_at'] is None
    assert cloud.api.get_aggregate({}, '3') == one
    with pytest.raises(exception.AggregateNotFound):
        cloud.api.get_aggregate({}, 'no-such')


def test_aggregate_reads_need_a_15_conductor(conf):
    from precache import rpc

    conf.config(control_exchange='precache-old-%s' % uuid.uuid4().hex[:8])
    transport = rpc.get_transport(conf.conf,
                                  'fake:///old-%s' % uuid.uuid4().hex[:8])
    server = rpc.get_server(transport, rpc.CONDUCTOR_TOPIC, 'old',
                            [OldConductor()])
    server.start()
    try:
        api = ConductorAPI(transport, timeout=10)
        with pytest.raises(messaging.UnsupportedVersion, match='1.5'):
            api.list_aggregates({})
        with pytest.raises(messaging.UnsupportedVersion, match='1.5'):
            api.get_aggregate({}, 'agg')
    finally:
        server.stop()
        server.wait()


def test_find_images_as_glance_lists_them(cloud):
    """1.6: the image lookup nova sends with an endpoint override."""
    active = cloud.add_image(container_format='bare')
    queued = cloud.add_image(status='queued')
    private = cloud.add_image(visibility='private', owner='other-project')
    member = {'project_id': 'p1', 'is_admin': False}
    found = cloud.api.find_images(
        {}, ids=[active.upper(), queued, private, 'not-an-id'],
        caller=member)
    assert {i['id'] for i in found} == {active, queued}
    shown = {i['id']: i for i in found}[active]
    assert shown['status'] == 'active' and shown['visibility'] == 'public'
    assert (shown['name'], shown['container_format']) == (
        'image-%s' % active[:8], 'bare')
    assert 'locations' not in shown and 'os_hash_value' not in shown
    assert [i['id'] for i in cloud.api.find_images(
        {}, ids=[private], caller={'is_admin': True,
                                   'project_id': 'admin'})] == [private]
    by_name = cloud.api.find_images({}, names=['image-%s' % active[:8]])
    assert [i['id'] for i in by_name] == [active]
    # NOTE: novaclient sends names=in:…; Glance takes it for a property.
    assert cloud.api.find_images({}, ids=None, properties={
        'names': 'in:image-%s' % active[:8]}) == []


class Conductor15:
    target = messaging.Target(version='1.5')


def test_find_images_needs_a_16_conductor(conf):
    from precache import rpc

    conf.config(control_exchange='precache-old-%s' % uuid.uuid4().hex[:8])
    transport = rpc.get_transport(conf.conf,
                                  'fake:///old-%s' % uuid.uuid4().hex[:8])
    server = rpc.get_server(transport, rpc.CONDUCTOR_TOPIC, 'old',
                            [Conductor15()])
    server.start()
    try:
        with pytest.raises(messaging.UnsupportedVersion, match='1.6'):
            ConductorAPI(transport, timeout=10).find_images({}, ids=[])
    finally:
        server.stop()
        server.wait()
