"""Desired state and the options the notification consumer relies on:
``hosts``, ``dedupe``, ``source``, and reconcile (module and RPC)."""

from __future__ import annotations

import datetime
import uuid

import pytest
import yaml

from precache import exception, objects
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor import desired, jobs
from precache.conductor.inventory import Aggregate, StaticInventory
from precache.db import migration
from precache.db.api import JobStore
from tests.unit.clock import Clock
from tests.unit.conftest import CELLS

State = objects.HostImageState
JobState = objects.JobState


# -- through the conductor's RPC API ---------------------------------------

def test_hosts_limits_the_job(cloud):
    job = cloud.wait(cloud.api.cache_images(
        {}, 'all', [cloud.add_image()],
        {'hosts': ['u-h3', 'u-h1'], 'source': 'consumer'}).id)
    assert sorted(r.host for r in job.results) == ['u-h1', 'u-h3']
    assert job.state is JobState.DONE
    assert job.options['source'] == 'consumer'


def test_host_outside_the_aggregate_is_refused(cloud):
    with pytest.raises(exception.InvalidOption) as info:
        cloud.api.cache_images({}, 'one', [cloud.add_image()],
                               {'hosts': ['u-h2', 'u-h9']})
    assert info.value.message == ('Invalid job option hosts: not in '
                                  'aggregate one: u-h9')
    assert info.value.code == 400


def test_dedupe_returns_the_job_that_covers_the_request(cloud, conf):
    # NOTE: u-ghost has no agent: its ping keeps the job running ~2 s.
    conf.config(group='conductor', agent_ping_timeout=2)
    first_image, other_image = cloud.add_image(), cloud.add_image()
    first = cloud.api.cache_images({}, 'partial', [first_image],
                                   {'dedupe': True})
    again = cloud.api.cache_images({}, 'partial', [first_image],
                                   {'dedupe': True})
    subset = cloud.api.cache_images({}, 'partial', [first_image],
                                    {'dedupe': True, 'hosts': ['u-h3']})
    assert again.id == first.id and subset.id == first.id
    assert not again.state.is_final
    # Not covered: another image; or no dedupe asked.
    other = cloud.api.cache_images({}, 'partial', [other_image],
                                   {'dedupe': True})
    plain = cloud.api.cache_images({}, 'partial', [first_image])
    assert len({first.id, other.id, plain.id}) == 3
    for job_id in (first.id, other.id, plain.id):
        cloud.wait(job_id)
    # Once the first job is final, the same request makes a new job.
    after = cloud.api.cache_images({}, 'partial', [first_image],
                                   {'dedupe': True})
    assert after.id not in (first.id, plain.id)
    assert cloud.wait(after.id).counts['existing'] == 2


def test_reconcile_over_rpc(cloud):
    image_id = cloud.add_image(precache_aggregates='one')
    job = cloud.api.reconcile({'request_id': 'req-r'}, 'one')
    assert job is not None and job.results is None
    assert job.image_ids == [image_id]
    assert job.options == {'hosts': ['u-h2'], 'dedupe': True,
                           'source': 'reconcile'}
    again = cloud.api.reconcile({}, 'one', source='consumer')
    assert again is None or again.id == job.id
    assert cloud.wait(job.id).counts['cached'] == 1
    assert cloud.api.reconcile({}, 'one') is None
    with pytest.raises(exception.InvalidOption):
        cloud.api.reconcile({}, 'one', hosts=['u-h1'])
    with pytest.raises(exception.AggregateNotFound):
        cloud.api.reconcile({}, 'nope')


# -- desired images and stale pairs ------------------------------------------

def test_desired_images_from_metadata_and_property(cloud):
    service = LocalImageService(cloud.catalog)
    name = 'agg-%s' % uuid.uuid4().hex[:6]
    listed = cloud.add_image()
    tagged = cloud.add_image(precache_aggregates=name)
    queued = cloud.add_image(status='queued')
    cloud.add_image(precache_aggregates=name, status='queued')
    aggregate = Aggregate(id='9', name=name, hosts=(), metadata={
        'precache:images': ' %s,,%s , not-an-id, %s, %s' % (
            listed.upper(), str(uuid.uuid4()), queued, listed)})
    assert desired.desired_images(aggregate, service) == [listed, tagged]


def test_images_name_aggregates_as_the_consumer_reads_them(cloud, conf):
    """A comma list in the property, or a tag per aggregate: the rule
    precache-consumer applies to Glance's notifications."""
    service = LocalImageService(cloud.catalog)
    name = 'agg-%s' % uuid.uuid4().hex[:6]
    in_list = cloud.add_image(precache_aggregates='other, %s ,edge' % name)
    by_tag = cloud.add_image(tags=['precache:' + name, 'gold'])
    cloud.add_image(precache_aggregates=name + '-x',
                    tags=['precache:%s-x' % name, name])
    aggregate = Aggregate(id='9', name=name, hosts=(), metadata={})
    assert sorted(desired.desired_images(aggregate, service)) == sorted(
        [in_list, by_tag])
    # The names are configurable, for both readers at once.
    conf.config(group='desired_state', image_property='rollout',
                image_tag_prefix='')
    renamed = cloud.add_image(rollout=name)
    assert desired.desired_images(aggregate, service) == [renamed]


def test_stale_pairs():
    now = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)

    def result(host, image, hours_ago):
        return objects.HostImageResult(
            host=host, image_id=image, state=State.CACHED,
            finished_at=now - datetime.timedelta(hours=hours_ago))

    latest = {('h1', 'a'): result('h1', 'a', 1),
              ('h1', 'b'): result('h1', 'b', 30),
              ('h2', 'a'): result('h2', 'a', 2)}
    assert desired.stale_pairs(['h1', 'h2'], ['a', 'b'], latest, now,
                               24 * 3600) == {('h1', 'b'), ('h2', 'b')}
    assert desired.stale_pairs(['h1', 'h2'], ['a', 'b'], latest, now,
                               0) == {('h2', 'b')}


# -- reconcile with a runner of its own ---------------------------------------

@pytest.fixture
def world(cloud, tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'desired.sqlite')
    migration.upgrade(url)
    store = JobStore(url)
    inventory = tmp_path / 'inventory.yaml'
    clock = Clock()
    runner = jobs.JobRunner(store, StaticInventory(str(inventory)),
                            LocalImageService(cloud.catalog),
                            lambda cell: AgentAPI(cloud.transport),
                            'u-desired', clock=clock)

    def aggregate(hosts, metadata):
        inventory.write_text(yaml.safe_dump({
            'cells': CELLS, 'aggregates': [{
                'id': 60, 'name': 'wanted', 'hosts': hosts,
                'metadata': metadata}]}))

    yield runner, aggregate, clock
    runner.stop()
    store.close()


def test_reconcile_runs_only_what_is_missing(cloud, world, conf):
    runner, aggregate, clock = world
    conf.config(group='conductor', refresh_age=3600)
    listed = cloud.add_image()
    by_property = cloud.add_image(precache_aggregates='wanted')
    aggregate(['u-h1', 'u-h2'], {'precache:images': listed})

    job = desired.reconcile(runner, 'wanted')
    assert job.image_ids == [listed, by_property]
    assert job.options['hosts'] == ['u-h1', 'u-h2']
    job = cloud.wait(job.id, store=runner.store)
    assert job.counts['cached'] == 4
    assert desired.reconcile(runner, '60') is None

    # A host joins the aggregate: only it gets a job.
    aggregate(['u-h1', 'u-h2', 'u-h3'], {'precache:images': listed})
    job = cloud.wait(desired.reconcile(runner, 'wanted').id,
                     store=runner.store)
    assert {r.host for r in job.results} == {'u-h3'}
    assert job.counts['cached'] == 2
    assert desired.reconcile(runner, 'wanted') is None

    # An image fails on one host: only that pair runs again.
    bad = cloud.add_image(bad_hash=True)
    aggregate(['u-h1', 'u-h2', 'u-h3'],
              {'precache:images': '%s,%s' % (listed, bad)})
    job = cloud.wait(desired.reconcile(runner, 'wanted',
                                       hosts=['u-h2']).id,
                     store=runner.store)
    assert job.image_ids == [bad] and job.counts['error'] == 1

    # Past the refresh age, everything runs again (and is touched).
    clock.now += datetime.timedelta(hours=2)
    job = cloud.wait(desired.reconcile(runner, 'wanted').id,
                     store=runner.store)
    assert job.hosts == 3 and job.counts['existing'] == 6
    assert job.counts['error'] == 3
    conf.config(group='conductor', refresh_age=0)
    clock.now += datetime.timedelta(days=30)
    job = desired.reconcile(runner, 'wanted')
    assert job is not None and job.image_ids == [bad]
    cloud.wait(job.id, store=runner.store)
