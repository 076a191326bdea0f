"""Jobs through the conductor's RPC API over the in-process bus.

Uses the session's ``cloud`` (tests/unit/conftest.py): a ConductorService
and three AgentServices over kombu's memory transport, as all-in-one runs.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from precache import exception, objects
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor import jobs
from precache.conductor.inventory import StaticInventory
from precache.db import migration
from precache.db.api import JobStore

State = objects.HostImageState
JobState = objects.JobState


def _by_host(job: objects.Job) -> dict[str, objects.HostImageResult]:
    assert job.results is not None
    return {r.host: r for r in job.results}


# -- validation, typed through RPC ------------------------------------------

def _refused(cloud, cls, aggregate='all', image_ids=None, options=None):
    before = len(cloud.store.list_jobs(limit=1000))
    with pytest.raises(cls) as info:
        cloud.api.cache_images({}, aggregate, image_ids
                               if image_ids is not None
                               else [cloud.add_image()], options)
    # Raised as our own type, re-created from the conductor's one.
    assert isinstance(info.value, exception.PrecacheException)
    assert type(info.value).__name__ == cls.__name__ + '_Remote'
    assert len(cloud.store.list_jobs(limit=1000)) == before, \
        'a refused request recorded a job'
    return info.value


def test_unknown_aggregate(cloud):
    exc = _refused(cloud, exception.AggregateNotFound, aggregate='nope')
    assert exc.message == 'Aggregate nope could not be found.'
    assert exc.kwargs == {'aggregate': 'nope'}
    assert exc.code == 404


@pytest.mark.parametrize('image_ids,reason', [
    ([], 'no image given'),
    (['cirros'], "'cirros' is not an image UUID"),
    (['{id}', '{id}'], 'duplicate image(s): {id}'),
    (['{id}', '{ID}'], 'duplicate image(s): {id}'),
])
def test_bad_image_lists(cloud, image_ids, reason):
    image_id = cloud.add_image()
    ids = [i.format(id=image_id, ID=image_id.upper()) for i in image_ids]
    exc = _refused(cloud, exception.InvalidImageList, image_ids=ids)
    assert exc.message == 'Invalid image list: ' + reason.format(
        id=image_id)
    assert exc.code == 400


def test_unknown_image(cloud):
    missing = str(uuid.uuid4())
    exc = _refused(cloud, exception.ImageNotFound,
                   image_ids=[cloud.add_image(), missing])
    assert exc.kwargs == {'image': missing}


@pytest.mark.parametrize('status', ['queued', 'deactivated'])
def test_image_not_active(cloud, status):
    image_id = cloud.add_image(status=status)
    exc = _refused(cloud, exception.ImageNotUsable, image_ids=[image_id])
    assert exc.message == 'Image %s cannot be cached: status is %s, not ' \
        'active' % (image_id, status)


@pytest.mark.parametrize('options,option', [
    ({'max_concurrent_hosts': 0}, 'max_concurrent_hosts'),
    ({'max_concurrent_hosts_per_cell': -1},
     'max_concurrent_hosts_per_cell'),
    ({'max_concurrent_hosts': '2'}, 'max_concurrent_hosts'),
    ({'max_concurrent_hosts': True}, 'max_concurrent_hosts'),
    ({'max_concurrent_hosts': 1.5}, 'max_concurrent_hosts'),
    ({'parallel': 2}, 'parallel'),
])
def test_bad_options(cloud, options, option):
    exc = _refused(cloud, exception.InvalidOption, options=options)
    assert exc.kwargs['option'] == option


def test_validate_options():
    assert jobs.validate_options(None) == {}
    assert jobs.validate_options({'max_concurrent_hosts': 3}) == \
        {'max_concurrent_hosts': 3}
    with pytest.raises(exception.InvalidOption, match='unknown'):
        jobs.validate_options({'x': 1})


def test_unknown_job(cloud):
    with pytest.raises(exception.JobNotFound) as info:
        cloud.api.get_job({}, 'no-such-job')
    assert info.value.kwargs == {'job': 'no-such-job'}
    with pytest.raises(exception.JobNotFound):
        cloud.api.list_jobs({}, marker='no-such-job')


# -- jobs that run ------------------------------------------------------------

def test_job_with_a_host_without_agent(cloud, conf):
    conf.config(group='conductor', agent_ping_timeout=2)
    image_id = cloud.add_image()
    accepted = cloud.api.cache_images({'request_id': 'req-1'}, 'partial',
                                      [image_id.upper()])
    assert accepted.state is JobState.PENDING
    assert accepted.aggregate == 'partial'
    assert accepted.image_ids == [image_id]
    assert accepted.hosts == 3
    assert accepted.counts['pending'] == 3

    job = cloud.wait(accepted.id)
    assert job.state is JobState.DONE
    rows = _by_host(job)
    assert sorted(rows) == ['u-ghost', 'u-h1', 'u-h3']
    ghost = rows['u-ghost']
    assert ghost.state is State.SKIPPED
    assert 'ping' in ghost.reason
    assert ghost.cell == 'cell2'
    size = os.path.getsize(cloud.image_path(image_id))
    for host, cell in (('u-h1', 'cell1'), ('u-h3', 'cell2')):
        assert rows[host].state is State.CACHED, rows[host].reason
        assert rows[host].method is objects.Method.FILE
        assert rows[host].bytes == size
        assert rows[host].cell == cell
        assert rows[host].finished_at >= rows[host].started_at
        with open(cloud.stores[host].path(image_id), 'rb') as cached, \
                open(cloud.image_path(image_id), 'rb') as source:
            assert cached.read() == source.read()
    assert job.counts['cached'] == 2 and job.counts['skipped'] == 1
    assert job.started_at and job.finished_at >= job.started_at
    assert not os.path.exists(cloud.stores['u-h2'].path(image_id))


def test_second_job_finds_images_existing(cloud):
    first_image, second_image = cloud.add_image(), cloud.add_image()
    first = cloud.wait(cloud.api.cache_images({}, 'one',
                                              [first_image]).id)
    assert _by_host(first)['u-h2'].state is State.CACHED
    job = cloud.wait(cloud.api.cache_images(
        {}, '0f7a6c1e-1b0e-4c55-8f0e-3a6b1d9c2e01',
        [first_image, second_image]).id)
    assert job.aggregate == 'all'
    states = {(r.host, r.image_id): r.state for r in job.results}
    assert states == {
        ('u-h1', first_image): State.CACHED,
        ('u-h2', first_image): State.EXISTING,
        ('u-h3', first_image): State.CACHED,
        ('u-h1', second_image): State.CACHED,
        ('u-h2', second_image): State.CACHED,
        ('u-h3', second_image): State.CACHED,
    }


def test_failures_are_recorded_per_image(cloud):
    bad = cloud.add_image(bad_hash=True)
    nowhere = cloud.add_image(located=False)
    good = cloud.add_image()
    job = cloud.wait(cloud.api.cache_images({}, '3',
                                            [bad, nowhere, good]).id)
    assert job.state is JobState.DONE
    rows = {r.image_id: r for r in job.results}
    assert rows[bad].state is State.ERROR
    assert 'sha512 mismatch' in rows[bad].reason
    assert rows[nowhere].state is State.UNSUPPORTED
    assert rows[nowhere].reason == 'file: no readable file location'
    assert rows[good].state is State.CACHED
    store = cloud.stores['u-h2']
    assert not os.path.exists(store.path(bad))
    assert not [n for n in os.listdir(store.base_dir)
                if n.endswith('.precache.part')]


def test_empty_aggregate_is_done_at_once(cloud):
    job = cloud.wait(cloud.api.cache_images({}, 'empty',
                                            [cloud.add_image()]).id)
    assert job.state is JobState.DONE
    assert job.hosts == 0 and job.results == []


def test_options_are_kept_and_listed(cloud):
    accepted = cloud.api.cache_images(
        {}, 'one', [cloud.add_image()],
        {'max_concurrent_hosts': 1, 'max_concurrent_hosts_per_cell': 1})
    assert accepted.options == {'max_concurrent_hosts': 1,
                                'max_concurrent_hosts_per_cell': 1}
    job = cloud.wait(accepted.id)
    listed = cloud.api.list_jobs({}, aggregate='one', limit=100)
    assert accepted.id in [j.id for j in listed]
    entry = [j for j in listed if j.id == accepted.id][0]
    assert entry.results is None
    assert entry.state is JobState.DONE
    assert entry.counts['cached'] == 1 and entry.hosts == 1
    assert job.options == accepted.options
    summary = cloud.api.get_job({}, accepted.id, with_results=False)
    assert summary.results is None and summary.counts == entry.counts


# -- recovery and start-up ----------------------------------------------------

def test_recover_resumes_unfinished_jobs(cloud, tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'recover.sqlite')
    migration.upgrade(url)
    store = JobStore(url)
    image_id = cloud.add_image()
    spec = cloud.conductor.runner.image_service.validate([image_id])
    hosts = [('u-h1', 'cell1'), ('u-h3', 'cell2')]
    interrupted = store.create_job('job-interrupted', 'all', spec, hosts,
                                   {}, conductor='u-recovering')
    store.set_job_state(interrupted.id, JobState.RUNNING)
    store.record_results(interrupted.id, [objects.HostImageResult(
        host='u-h1', image_id=image_id, state=State.CACHED, bytes=12345,
        method=objects.Method.FILE)])
    store.set_host_state(interrupted.id, 'u-h3', State.RUNNING)
    other_spec = cloud.conductor.runner.image_service.validate(
        [cloud.add_image()])
    pending = store.create_job('job-pending', 'all', other_spec, hosts, {},
                               conductor='u-recovering')
    others = store.create_job('job-of-another', 'all', spec, hosts, {},
                              conductor='u-someone-else')

    service = cloud.make_conductor('u-recovering', store)
    service.start()
    try:
        job = cloud.wait(interrupted.id, store=store)
        assert job.state is JobState.DONE
        rows = _by_host(job)
        # The host that had finished is not asked again.
        assert rows['u-h1'].bytes == 12345
        assert rows['u-h3'].state is State.CACHED
        assert rows['u-h3'].bytes == os.path.getsize(
            cloud.image_path(image_id))
        job = cloud.wait(pending.id, store=store)
        assert job.state is JobState.DONE
        assert [r.state for r in job.results] == [State.CACHED] * 2
        assert service.runner.recover() == []
    finally:
        service.stop()
        service.wait()
    assert store.get_job(others.id).state is JobState.PENDING


def test_conductor_refuses_an_unmigrated_store(cloud, tmp_path):
    store = JobStore('sqlite:///%s' % (tmp_path / 'empty.sqlite'))
    service = cloud.make_conductor('u-unmigrated', store)
    try:
        with pytest.raises(exception.ServiceUnavailable,
                           match='db sync'):
            service.start()
    finally:
        store.close()


def test_conductor_refuses_a_broken_inventory(cloud, tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'jobs.sqlite')
    migration.upgrade(url)
    store = JobStore(url)
    broken = tmp_path / 'inventory.yaml'
    broken.write_text('- not a mapping\n')
    service = cloud.make_conductor('u-broken', store, str(broken))
    try:
        with pytest.raises(exception.InventoryInvalid, match=str(broken)):
            service.start()
    finally:
        store.close()



# -- JobRunner on its own -----------------------------------------------------

def _runner(cloud, store, agents) -> jobs.JobRunner:
    return jobs.JobRunner(store, StaticInventory(cloud.inventory),
                          LocalImageService(cloud.catalog), agents,
                          'u-runner')


def test_host_failing_outside_its_call_is_an_error(cloud, own_store):
    agent_api = AgentAPI(cloud.transport)

    def agents(cell):
        if cell == 'cell2':
            raise RuntimeError('no transport for cell2')
        return agent_api

    runner = _runner(cloud, own_store, agents)
    try:
        accepted = runner.create('all', [cloud.add_image()])
        job = cloud.wait(accepted.id, store=own_store)
    finally:
        runner.stop()
    assert job.state is JobState.DONE
    rows = _by_host(job)
    assert rows['u-h1'].state is State.CACHED
    assert rows['u-h2'].state is State.CACHED
    assert rows['u-h3'].state is State.ERROR
    assert rows['u-h3'].reason == 'internal error: no transport for cell2'


def test_stopped_runner_leaves_the_rest_for_the_next_start(cloud, conf,
                                                           own_store):
    conf.config(group='conductor', max_concurrent_hosts=1)
    agent_api = AgentAPI(cloud.transport)
    entered, go = threading.Event(), threading.Event()

    def agents(cell):
        if not entered.is_set():
            entered.set()
            assert go.wait(10)
        return agent_api

    runner = _runner(cloud, own_store, agents)
    accepted = runner.create('all', [cloud.add_image()])
    assert entered.wait(10)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while not runner._stop.is_set():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    go.set()
    stopper.join(10)
    assert not stopper.is_alive()

    job = own_store.get_job(accepted.id)
    assert job.state is JobState.RUNNING
    assert [(r.host, r.state) for r in job.results] == [
        ('u-h1', State.CACHED), ('u-h2', State.PENDING),
        ('u-h3', State.PENDING)]

    restarted = _runner(cloud, own_store, lambda cell: agent_api)
    try:
        assert restarted.recover() == [accepted.id]
        job = cloud.wait(accepted.id, store=own_store)
    finally:
        restarted.stop()
    assert job.state is JobState.DONE
    assert [r.state for r in job.results] == [State.CACHED] * 3
