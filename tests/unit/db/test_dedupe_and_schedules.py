"""Deduplicated job creation, skipping hosts, and the schedules' claims,
on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime
import threading
import uuid

import sqlalchemy as sa

from precache import objects
from precache.db import migration
from precache.db.api import create_engine
from precache.db.schedules import CLAIM_TIMEOUT, Claim, ScheduleStore
from tests.unit.db.test_api import HOSTS, IMAGES

State = objects.HostImageState
JobState = objects.JobState


def _create(store, images=IMAGES, hosts=HOSTS, aggregate='agg',
            dedupe=True):
    return store.create_job(str(uuid.uuid4()), aggregate, images,
                            list(hosts), {'dedupe': dedupe},
                            dedupe=dedupe)


def test_dedupe_returns_the_covering_job(store):
    first = _create(store)
    assert _create(store).id == first.id
    assert _create(store, images=IMAGES[:1], hosts=HOSTS[1:]).id == first.id
    # Not covered: another aggregate, another host, or no dedupe.
    assert _create(store, aggregate='other').id != first.id
    assert _create(store, hosts=[*HOSTS, ('h9', None)]).id != first.id
    assert _create(store, dedupe=False).id != first.id
    # A final job covers nothing.
    store.set_job_state(first.id, JobState.RUNNING)
    store.set_job_state(first.id, JobState.DONE)
    newest = _create(store, images=IMAGES[1:])
    assert newest.id != first.id
    assert newest.state is JobState.PENDING


def test_dedupe_of_an_empty_aggregate(store):
    first = _create(store, hosts=[])
    assert _create(store, hosts=[]).id == first.id


def test_concurrent_dedupe_makes_one_job(store):
    ids: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait(5)
        ids.append(_create(store).id)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 4 and len(set(ids)) == 1


def test_skip_hosts_only_touches_unfinished_rows(store):
    job = _create(store, dedupe=False)
    store.record_results(job.id, [objects.HostImageResult(
        host='h1', image_id=IMAGES[0].id, state=State.CACHED)])
    store.set_host_state(job.id, 'h2', State.RUNNING)
    assert store.skip_hosts(job.id, ['h1', 'h2'], 'window closed') == 3
    rows = {(r.host, r.image_id): r for r in store.get_job(job.id).results}
    assert rows[('h1', IMAGES[0].id)].state is State.CACHED
    for key in (('h1', IMAGES[1].id), ('h2', IMAGES[0].id),
                ('h2', IMAGES[1].id)):
        assert rows[key].state is State.SKIPPED
        assert rows[key].reason == 'window closed'
        assert rows[key].finished_at is not None
    assert rows[('h3', IMAGES[0].id)].state is State.PENDING


def test_schedule_claims(store):
    schedules = ScheduleStore(store.engine)
    name = 'nightly-%s' % uuid.uuid4().hex[:6]
    at = datetime.datetime(2026, 1, 1, 2, tzinfo=datetime.UTC)
    assert schedules.get(name) is None
    assert schedules.claim(name, at, 'c1') is Claim.CLAIMED
    # The same occurrence, from another conductor: already taken.
    assert schedules.claim(name, at, 'c2') is Claim.DONE
    record = schedules.get(name)
    assert (record.occurrence, record.conductor, record.job_id) == (
        at, 'c1', None)
    # Its job is being created: the next occurrence must wait.
    later = at + datetime.timedelta(days=1)
    assert schedules.claim(name, later, 'c2') is Claim.BUSY
    job = _create(store, dedupe=False)
    schedules.finish_claim(name, at, job_id=job.id)
    assert schedules.claim(name, later, 'c2') is Claim.BUSY
    store.set_job_state(job.id, JobState.RUNNING)
    store.set_job_state(job.id, JobState.DONE)
    assert schedules.claim(name, later, 'c2') is Claim.CLAIMED
    # A failed creation frees the schedule at once; a claim whose
    # conductor died frees it after CLAIM_TIMEOUT.
    schedules.finish_claim(name, later, note='image not found')
    assert schedules.get(name).note == 'image not found'
    third = later + datetime.timedelta(days=1)
    assert schedules.claim(name, third, 'c1') is Claim.CLAIMED
    fourth = third + datetime.timedelta(days=1)
    assert schedules.claim(name, fourth, 'c1', now=objects.utcnow()) is \
        Claim.BUSY
    assert schedules.claim(name, fourth, 'c1', now=objects.utcnow()
                           + CLAIM_TIMEOUT) is Claim.CLAIMED


def test_concurrent_claims_take_an_occurrence_once(store):
    schedules = ScheduleStore(store.engine)
    at = datetime.datetime(2026, 1, 1, 2, tzinfo=datetime.UTC)
    results: list[Claim] = []
    barrier = threading.Barrier(4)

    def claim(conductor: str) -> None:
        barrier.wait(5)
        results.append(schedules.claim('race', at, conductor))

    threads = [threading.Thread(target=claim, args=('c%d' % i,))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted([Claim.CLAIMED] + [Claim.DONE] * 3)


def test_schedule_runs_migration_downgrades_and_upgrades(db_url):
    migration.upgrade(db_url)
    migration.downgrade('0002', db_url)
    assert migration.current(db_url) == '0002'
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert 'schedule_runs' not in sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    migration.upgrade(db_url)
    assert migration.current(db_url) == migration.head()
