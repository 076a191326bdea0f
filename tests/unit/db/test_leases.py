"""Job leases on every database: the takeover's compare-and-swap has
one winner, and writes carrying a lease that moved are refused whole."""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
import sqlalchemy as sa

from precache import exception, objects
from precache.db import models
from precache.db.leases import Lease, LeaseStore

H = objects.HostImageState
IMAGE = objects.ImageSpec(id='11111111-1111-4111-8111-111111111111', size=1)
HOSTS = [('l-h1', None), ('l-h2', None)]


def _job(store, owner='c1', lease_time=30.0) -> str:
    return store.create_job(str(uuid.uuid4()), 'agg', [IMAGE], HOSTS, {},
                            conductor=owner, lease_time=lease_time).id


def _expire(store, job_id) -> None:
    past = objects.utcnow() - datetime.timedelta(seconds=5)
    with store.engine.begin() as conn:
        conn.execute(sa.update(models.Job).where(models.Job.id == job_id)
                     .values(lease_expires_at=past))


def _result(host, state=H.CACHED) -> objects.HostImageResult:
    now = objects.utcnow()
    return objects.HostImageResult(host=host, image_id=IMAGE.id, state=state,
                                   started_at=now, finished_at=now)


def test_a_held_lease_is_not_taken(store):
    leases = LeaseStore(store.engine)
    job_id = _job(store)
    assert leases.candidates(['c1', 'c2']) == []
    assert [c.job_id for c in leases.candidates(['c2'])] == [job_id]


def test_one_compare_and_swap_wins(store):
    leases = LeaseStore(store.engine)
    job_id = _job(store)
    _expire(store, job_id)
    live = ['c1', 'c2', 'c3']
    [seen] = leases.candidates(live)
    assert (seen.owner, seen.generation) == ('c1', 0)
    assert 'expired' in seen.why
    assert leases.take_over(seen, 'c2', 30, live) == Lease('c2', 1)
    assert leases.take_over(seen, 'c3', 30, live) is None
    assert store.runner_of(job_id) == 'c2'
    assert leases.candidates(live) == []


def test_renewal_keeps_others_off_and_reports_lost_leases(store):
    leases = LeaseStore(store.engine)
    mine, taken = _job(store), _job(store)
    _expire(store, mine)
    _expire(store, taken)
    [_, seen] = leases.candidates(['c1', 'c2'])
    assert leases.take_over(seen, 'c2', 30, ['c1', 'c2'])
    lost = leases.renew('c1', 30, {mine: Lease('c1', 0),
                                   taken: Lease('c1', 0)})
    assert lost == [taken]
    assert leases.candidates(['c1', 'c2']) == []


def test_a_stopped_or_silent_owner_loses_its_jobs_at_once(store):
    leases = LeaseStore(store.engine)
    _job(store)
    [seen] = leases.candidates(['c2'])
    assert 'down' in seen.why
    assert leases.take_over(seen, 'c2', 30, ['c2']) == Lease('c2', 1)


def test_release_lets_another_take_over_now(store):
    leases = LeaseStore(store.engine)
    job_id = _job(store)
    time.sleep(0.01)
    assert leases.release('c1') == 1
    [seen] = leases.candidates(['c1', 'c2'])
    assert seen.job_id == job_id
    assert leases.take_over(seen, 'c2', 30, ['c1', 'c2'])


def test_a_restart_takes_the_next_generation_of_its_own_jobs(store):
    leases = LeaseStore(store.engine)
    job_id = _job(store)
    assert leases.claim_own('c1', 30) == {job_id: Lease('c1', 1)}
    with pytest.raises(exception.LeaseLost):
        store.set_job_state(job_id, objects.JobState.RUNNING,
                            lease=Lease('c1', 0))


def test_writes_with_a_lost_lease_are_refused_whole(store):
    leases = LeaseStore(store.engine)
    job_id = _job(store)
    old = Lease('c1', 0)
    assert store.set_job_state(job_id, objects.JobState.RUNNING, lease=old)
    store.record_progress([(job_id, 'l-h1')], [], {job_id: old})
    _expire(store, job_id)
    [seen] = leases.candidates(['c1', 'c2'])
    new = leases.take_over(seen, 'c2', 30, ['c1', 'c2'])
    with pytest.raises(exception.LeaseLost):
        store.record_progress([(job_id, 'l-h2')], [(job_id, [
            _result('l-h1')])], {job_id: old})
    with pytest.raises(exception.LeaseLost):
        store.skip_hosts(job_id, ['l-h2'], 'window closed', lease=old)
    with pytest.raises(exception.LeaseLost):
        store.set_host_state(job_id, 'l-h1', H.ERROR, lease=old)
    with pytest.raises(exception.LeaseLost):
        store.set_job_state(job_id, objects.JobState.DONE, lease=old)
    job = store.get_job(job_id)
    assert {r.host: r.state for r in job.results} == {
        'l-h1': H.RUNNING, 'l-h2': H.PENDING}
    assert job.state is objects.JobState.RUNNING
    store.record_progress([(job_id, 'l-h2')], [(job_id, [
        _result('l-h1', H.EXISTING)])], {job_id: new})
    job = store.get_job(job_id)
    assert {r.host: r.state for r in job.results} == {
        'l-h1': H.EXISTING, 'l-h2': H.RUNNING}


def test_service_rows(store):
    leases = LeaseStore(store.engine)
    leases.report('c1', 'up', '1.0', started=True)
    leases.report('c2', 'up', '1.0', started=True)
    leases.report('c2', 'stopped', '1.0')
    assert leases.live_conductors(60) == ['c1']
    assert [(r.host, r.state) for r in leases.conductors()] == [
        ('c1', 'up'), ('c2', 'stopped')]
    assert leases.live_conductors(-1) == []


def test_renewal_extends_only_the_leases_held(store):
    leases = LeaseStore(store.engine)
    held, dropped = _job(store), _job(store)
    _expire(store, held)
    _expire(store, dropped)
    assert leases.renew('c1', 30, {held: Lease('c1', 0)}) == []
    assert [c.job_id for c in leases.candidates(['c1'])] == [dropped]
