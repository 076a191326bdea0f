"""A cancel that reaches any conductor is exact: no host starts after it.

Conductors write a host's claim a few milliseconds after its call starts
(conductor/recorder.py); only the conductor running the job can tell a
host that is starting from one that is not, so the others forward the
cancel to it.
"""

from __future__ import annotations

import time
import uuid

from precache import objects, states
from precache.cmd import stop_all
from precache.db.api import JobStore
from precache.db.leases import LeaseStore

State = objects.HostImageState
JobState = objects.JobState


def _running(cloud, job_id: str) -> objects.Job:
    deadline = time.monotonic() + 20
    while True:
        job = cloud.store.get_job(job_id, with_results=False)
        if job.counts['running']:
            return job
        assert time.monotonic() < deadline, job.counts
        time.sleep(0.01)


def test_cancel_through_another_conductor_starts_no_host(cloud, conf):
    # NOTE: one host at a time, each ~1 s, so the cancel lands while the
    # first host fetches and the next would start right after it.
    conf.config(group='conductor', max_concurrent_hosts=1)
    conf.config(group='agent', download_rate_limit=256, chunk_size=64)
    store = JobStore(cloud.db_url)
    other = cloud.make_conductor('u-other', store)
    other.start()
    try:
        accepted = cloud.api.cache_images(
            {}, 'all', [cloud.add_image(bytes(256 * 1024))])
        runner = cloud.store.runner_of(accepted.id)
        elsewhere = ({'u-conductor', 'u-other'} - {runner}).pop()
        _running(cloud, accepted.id)
        cancelling = cloud.api.cancel_job({}, accepted.id, server=elsewhere)
        assert cancelling.state is JobState.RUNNING
        assert cancelling.reason == states.JobReason.CANCELLED
        assert cancelling.counts['running'] == 1
        assert cancelling.counts['skipped'] == 2
        job = cloud.wait(accepted.id)
    finally:
        stop_all([other])
        store.close()
    assert job.state is JobState.CANCELLED
    assert sorted((r.state, r.reason) for r in job.results) == [
        (State.CACHED, None), (State.SKIPPED, 'cancelled'),
        (State.SKIPPED, 'cancelled')]


def test_cancel_of_a_job_whose_conductor_is_gone(cloud, conf):
    conf.config(group='conductor', peer_timeout=1)
    image = objects.ImageSpec(id=cloud.add_image(), size=64 * 1024)
    # NOTE: its row and lease still look alive (a conductor cut off from
    # the bus, not the database), so nobody takes the job over.
    LeaseStore(cloud.store.engine).report('u-gone', 'up', None)
    job = cloud.store.create_job(str(uuid.uuid4()), 'all', [image],
                                 [('u-h1', 'cell1')], {},
                                 conductor='u-gone', lease_time=300)
    assert cloud.store.runner_of(job.id) == 'u-gone'
    started = time.monotonic()
    cancelled = cloud.api.cancel_job({}, job.id)
    assert 1 <= time.monotonic() - started < 10
    assert cancelled.state is JobState.CANCELLED
    assert [r.reason for r in cloud.store.get_job(job.id).results] == [
        'cancelled']
    assert cloud.store.runner_of(job.id) is None


def test_cancel_of_a_job_whose_conductor_is_down_does_not_wait(cloud, conf):
    """Its service row says so: no peer_timeout spent on it."""
    conf.config(group='conductor', peer_timeout=30)
    image = objects.ImageSpec(id=cloud.add_image(), size=64 * 1024)
    LeaseStore(cloud.store.engine).report('u-stopped', 'stopped', None)
    job = cloud.store.create_job(str(uuid.uuid4()), 'all', [image],
                                 [('u-h1', 'cell1')], {},
                                 conductor='u-stopped', lease_time=300)
    started = time.monotonic()
    cancelled = cloud.api.cancel_job({}, job.id)
    assert time.monotonic() - started < 10
    assert cancelled.state is JobState.CANCELLED
    assert [r.reason for r in cloud.store.get_job(job.id).results] == [
        'cancelled']
