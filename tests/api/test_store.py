"""The job store queries behind cancel and resident images (SQLite,
PostgreSQL and MariaDB): a host is either started or skipped, never
both."""

from __future__ import annotations

import datetime
import threading

import pytest

from precache import exception, objects
from precache.db import migration
from precache.db.api import JobStore

State = objects.HostImageState
JobState = objects.JobState
IMAGES = [objects.ImageSpec(id='6c1b2a3d-0000-4000-8000-00000000000%d' % i)
          for i in (1, 2)]
HOSTS = [('h1', 'c1'), ('h2', 'c1'), ('h3', None)]


@pytest.fixture(params=['sqlite',
                        pytest.param('postgres', marks=pytest.mark.postgres),
                        pytest.param('mariadb', marks=pytest.mark.mariadb)])
def store(request, tmp_path):
    if request.param == 'sqlite':
        url = 'sqlite:///%s' % (tmp_path / 'jobs.sqlite')
    else:
        url = request.getfixturevalue('%s_url' % request.param)
    migration.upgrade(url)
    store = JobStore(url)
    yield store
    store.close()


def _job(store, job_id='0b8f6f0e-0000-4000-8000-000000000001'):
    return store.create_job(job_id, 'agg', IMAGES, HOSTS, {})


def test_cancel_pending_job_is_final_at_once(store):
    job = _job(store)
    cancelled = store.cancel_job(job.id, 'cancelled by request')
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.finished_at is not None
    rows = store.get_job(job.id).results
    assert {(r.state, r.reason) for r in rows} == {(State.SKIPPED,
                                                    'cancelled')}
    assert not store.set_job_state(job.id, JobState.RUNNING,
                                   only_from=(JobState.PENDING,
                                              JobState.RUNNING))
    with pytest.raises(exception.Conflict):
        store.cancel_job(job.id, 'again')


def test_cancel_running_job_waits_for_hosts_in_flight(store):
    job = _job(store)
    assert store.set_job_state(job.id, JobState.RUNNING,
                               only_from=(JobState.PENDING,))
    assert store.claim_host(job.id, 'h1')
    cancelled = store.cancel_job(job.id, 'cancelled by request')
    assert cancelled.state is JobState.RUNNING
    assert cancelled.reason == 'cancelled by request'
    assert cancelled.counts['running'] == 2
    assert cancelled.counts['skipped'] == 4
    assert not store.claim_host(job.id, 'h2')
    assert not store.claim_host(job.id, 'h3')
    assert store.claim_host(job.id, 'h1')  # a resumed job re-claims
    # Cancelling again while it runs is fine (idempotent).
    assert store.cancel_job(job.id, 'cancelled by request').state is \
        JobState.RUNNING


def test_claims_and_a_cancel_racing(store):
    """Every host ends either claimed (in flight) or skipped."""
    job = store.create_job('0b8f6f0e-0000-4000-8000-000000000002', 'agg',
                           IMAGES, [('h%02d' % i, None) for i in range(30)],
                           {})
    store.set_job_state(job.id, JobState.RUNNING)
    claimed: list[str] = []
    go = threading.Event()

    def claim(host: str) -> None:
        go.wait()
        if store.claim_host(job.id, host):
            claimed.append(host)

    threads = [threading.Thread(target=claim, args=('h%02d' % i,))
               for i in range(30)]
    for thread in threads:
        thread.start()
    go.set()
    store.cancel_job(job.id, 'cancelled by request')
    for thread in threads:
        thread.join()
    rows = store.get_job(job.id).results
    by_host = {}
    for row in rows:
        by_host.setdefault(row.host, set()).add(row.state)
    for host, states in by_host.items():
        assert states == ({State.RUNNING} if host in claimed
                          else {State.SKIPPED}), (host, states)


def _result(host, image, state, minutes, method=objects.Method.FILE):
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + \
        datetime.timedelta(minutes=minutes)
    return objects.HostImageResult(host=host, image_id=image, state=state,
                                   method=method, bytes=10, started_at=at,
                                   finished_at=at)


def test_resident_images_take_the_latest_attempt(store):
    one, two = (image.id for image in IMAGES)
    first = _job(store, '0b8f6f0e-0000-4000-8000-000000000011')
    store.record_results(first.id, [
        _result('h1', one, State.CACHED, 1),
        _result('h2', one, State.CACHED, 1),
        _result('h3', one, State.ERROR, 1),
        _result('h1', two, State.CACHED, 1),
        _result('h2', two, State.UNSUPPORTED, 1, None),
        _result('h3', two, State.CACHED, 1)])
    second = _job(store, '0b8f6f0e-0000-4000-8000-000000000012')
    store.record_results(second.id, [
        _result('h1', one, State.SKIPPED, 5, None),   # no information
        _result('h2', one, State.ERROR, 5),           # gone since
        _result('h3', one, State.EXISTING, 5),        # there now
        _result('h1', two, State.EXISTING, 5)])
    found = {(r.host, r.image_id): (job_id, r.state)
             for job_id, r in store.resident_images(['h1', 'h2', 'h3'])}
    assert found == {
        ('h1', one): (first.id, State.CACHED),
        ('h3', one): (second.id, State.EXISTING),
        ('h1', two): (second.id, State.EXISTING),
        ('h3', two): (first.id, State.CACHED)}
    assert store.resident_images(['h2']) == []
    assert store.resident_images([]) == []
