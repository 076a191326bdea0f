"""Leases in the conductor: a run whose lease moved stops and writes
nothing more; the lease thread renews, reports losses and takes over
jobs left by conductors gone; a stop releases what it holds."""

from __future__ import annotations

import datetime
import logging

import sqlalchemy as sa

from precache import objects
from precache.conductor.liveness import LeaseClock, Liveness
from precache.db import models
from precache.db.leases import Candidate, Lease, LeaseStore
from tests.unit.conductor.test_jobrun import IMAGE, _run
from tests.unit.conductor.test_jobrun import parts as parts  # noqa: F401

State = objects.HostImageState
JobState = objects.JobState


def _expire(store, job_id) -> None:
    past = objects.utcnow() - datetime.timedelta(seconds=5)
    with store.engine.begin() as conn:
        conn.execute(sa.update(models.Job).where(models.Job.id == job_id)
                     .values(lease_expires_at=past))


def _leased_run(shared, runs):
    run = _run(shared, runs)
    with shared.store.engine.begin() as conn:
        conn.execute(sa.update(models.Job).where(models.Job.id == run.job_id)
                     .values(conductor='c1'))
    run.lease = Lease('c1', 0)
    return run


def _steal(store, job_id, heir='c2') -> Lease:
    _expire(store, job_id)
    leases = LeaseStore(store.engine)
    [seen] = leases.candidates(['c1', heir])
    lease = leases.take_over(seen, heir, 30, ['c1', heir])
    assert lease is not None
    return lease


def test_a_run_whose_lease_moved_stops_and_writes_nothing(parts, caplog):
    shared, runs = parts
    run = _leased_run(shared, runs)
    run.start_host('j-h1', None)
    shared.recorder.sync(run.job_id)
    _steal(shared.store, run.job_id)
    caplog.set_level(logging.WARNING)
    run.start_host('j-h2', 'cell1')
    run.end([], 0.0)
    assert run.lost and run.stop.is_set()
    job = shared.store.get_job(run.job_id)
    assert job.state is JobState.RUNNING
    assert {r.host: r.state for r in job.results} == {
        'j-h1': State.CACHED, 'j-h2': State.PENDING}
    lines = [r.message for r in caplog.records if 'lease' in r.message]
    assert len(lines) == 1 and 'writes nothing more' in lines[0], lines
    assert ('ended', 'done') not in shared.notifier.events


def test_a_run_paused_past_its_lease_asks_the_store_first(parts):
    shared, runs = parts
    run = _leased_run(shared, runs)
    now = [0.0]
    clock = LeaseClock(lambda: now[0])
    shared = run.shared = type(shared)(**{
        **shared.__dict__, 'lease_clock': clock,
        'leases': LeaseStore(shared.store.engine)})
    _steal(shared.store, run.job_id)
    now[0] = 1000.0  # NOTE: a SIGSTOP longer than the lease
    run.start_host('j-h1', None)
    assert run.lost
    assert shared.caller.called == []


class Runner:
    def __init__(self) -> None:
        self.held: dict[str, Lease] = {}
        self.lost: list[str] = []
        self.taken: list[tuple[Candidate, Lease]] = []

    def held_leases(self):
        return dict(self.held)

    def lease_lost(self, job_id):
        self.lost.append(job_id)

    def take_over(self, candidate, lease):
        self.taken.append((candidate, lease))


def _job(store, owner) -> str:
    return store.create_job(
        'job-%s' % owner, 'agg', [IMAGE], [('l-h1', None)], {},
        conductor=owner, lease_time=30).id


def test_liveness_renews_takes_over_and_releases(own_store):
    leases = LeaseStore(own_store.engine)
    runner = Runner()
    mine = _job(own_store, 'c1')
    runner.held[mine] = Lease('c1', 0)
    dead = _job(own_store, 'c-dead')
    liveness = Liveness(leases, 'c1', runner, LeaseClock())
    liveness.report(started=True)
    assert liveness.take_over() == [dead]
    [(candidate, lease)] = runner.taken
    assert candidate.owner == 'c-dead' and 'down' in candidate.why
    assert lease == Lease('c1', 1)
    _steal(own_store, mine)
    liveness.renew()
    assert runner.lost == [mine]
    liveness.stop()
    assert [(r.host, r.state) for r in leases.conductors()] == [
        ('c1', 'stopped')]
    # Released: the job taken over from c-dead is anyone's now.
    assert [c.job_id for c in leases.candidates(['c2'])] == [dead]


def test_a_job_left_by_a_dead_conductor_is_taken_over(cloud, own_store,
                                                      conf):
    """Final rows are not called again; pending ones start; the one left
    running is called again and says it was resumed."""
    conf.config(group='conductor', takeover_interval=1)
    store = own_store
    image_id = cloud.add_image()
    spec = cloud.conductor.runner.image_service.validate([image_id])
    hosts = [('u-h1', 'cell1'), ('u-h2', 'cell1'), ('u-h3', 'cell2')]
    job = store.create_job('job-orphan', 'all', spec, hosts, {},
                           conductor='u-dead', lease_time=30)
    store.set_job_state(job.id, JobState.RUNNING)
    store.record_results(job.id, [objects.HostImageResult(
        host='u-h1', image_id=image_id, state=State.CACHED, bytes=12345,
        method=objects.Method.FILE)])
    store.set_host_state(job.id, 'u-h3', State.RUNNING)
    service = cloud.make_conductor('u-heir', store)
    service.start()
    try:
        done = cloud.wait(job.id, store=store)
    finally:
        service.stop()
        service.wait()
    rows = {r.host: r for r in done.results}
    assert done.state is JobState.DONE
    assert rows['u-h1'].bytes == 12345 and rows['u-h1'].reason is None
    assert rows['u-h2'].state is State.CACHED and rows['u-h2'].reason is None
    assert rows['u-h3'].state is State.CACHED
    assert rows['u-h3'].reason == 'resumed from u-dead'
    assert store.runner_of(job.id) is None


def test_a_lease_that_cannot_be_confirmed_stops_the_run(parts):
    shared, runs = parts
    run = _leased_run(shared, runs)

    class Unreachable:
        def renew(self, *args):
            from precache import exception
            raise exception.JobStoreError(reason='connection refused')

    now = [0.0]
    run.shared = type(shared)(**{
        **shared.__dict__, 'lease_clock': LeaseClock(lambda: now[0]),
        'leases': Unreachable()})
    now[0] = 1000.0
    run.start_host('j-h1', None)
    assert run.lost and shared.caller.called == []
    run.end([], 0.0)
    assert shared.store.get_job(run.job_id).state is JobState.RUNNING
