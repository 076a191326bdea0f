"""JobStore on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime
import threading
import uuid

import pytest

from precache import exception, objects
from precache.db.api import JobStore

State = objects.HostImageState
JobState = objects.JobState

IMAGES = [objects.ImageSpec(id='11111111-1111-4111-8111-111111111111',
                            size=10, name='one', os_hash_algo='sha512',
                            os_hash_value='ab' * 64,
                            locations=('file:///img/one',)),
          objects.ImageSpec(id='22222222-2222-4222-8222-222222222222',
                            size=20)]
HOSTS = [('h2', 'c1'), ('h1', 'c1'), ('h3', None)]


def _job(store: JobStore, aggregate: str = 'agg', hosts=HOSTS,
         images=IMAGES, conductor: str | None = 'cond-1',
         job_id: str | None = None) -> objects.Job:
    return store.create_job(job_id or str(uuid.uuid4()), aggregate, images,
                            list(hosts), {'max_concurrent_hosts': 2},
                            conductor=conductor, request_id='req-1')


def _result(host: str, image: objects.ImageSpec, state: State,
            **kwargs) -> objects.HostImageResult:
    return objects.HostImageResult(host=host, image_id=image.id,
                                   state=state, **kwargs)


def test_create_job_records_pending_rows(store):
    before = objects.utcnow()
    job = _job(store)
    assert job.state is JobState.PENDING
    assert job.aggregate == 'agg'
    assert job.image_ids == [i.id for i in IMAGES]
    assert job.options == {'max_concurrent_hosts': 2}
    assert job.hosts == 3
    assert job.counts['pending'] == 6
    assert sum(job.counts.values()) == 6
    assert before <= job.created_at <= objects.utcnow()
    assert job.created_at.tzinfo is not None
    assert job.started_at is None and job.finished_at is None
    # Ordered by host, then in image order.
    assert [(r.host, r.image_id) for r in job.results] == [
        (h, i.id) for h in ('h1', 'h2', 'h3') for i in IMAGES]
    assert {r.host: r.cell for r in job.results} == {'h1': 'c1',
                                                     'h2': 'c1',
                                                     'h3': None}
    assert all(r.state is State.PENDING and r.bytes == 0
               for r in job.results)


def test_get_job_without_results(store):
    job = _job(store)
    found = store.get_job(job.id, with_results=False)
    assert found.results is None
    # The image service's names, kept when the job was accepted.
    assert found.image_names == {IMAGES[0].id: 'one'}
    assert found.counts['pending'] == 6 and found.hosts == 3


def test_get_images_round_trip(store):
    job = _job(store)
    assert store.get_images(job.id) == IMAGES


def test_job_without_hosts(store):
    job = _job(store, hosts=[])
    assert job.hosts == 0 and job.results == []
    assert sum(job.counts.values()) == 0
    assert store.list_jobs()[0].hosts == 0


def test_unknown_job(store):
    for call in (lambda: store.get_job('nope'),
                 lambda: store.get_images('nope'),
                 lambda: store.set_job_state('nope', JobState.DONE),
                 lambda: store.list_jobs(marker='nope')):
        with pytest.raises(exception.JobNotFound) as info:
            call()
        assert info.value.kwargs == {'job': 'nope'}


def test_duplicate_job_id_is_refused(store):
    job = _job(store)
    with pytest.raises(Exception):  # noqa: B017 - the driver's own error
        _job(store, job_id=job.id)
    assert store.get_job(job.id).hosts == 3


def test_record_results(store):
    job = _job(store)
    start = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(seconds=2.5)
    store.record_results(job.id, [
        _result('h1', IMAGES[0], State.CACHED, method=objects.Method.FILE,
                bytes=10, seconds=2.5, started_at=start, finished_at=end),
        _result('h1', IMAGES[1], State.ERROR, reason='sha512 mismatch'),
        _result('h2', IMAGES[0], State.EXISTING),
        # Not a row of this job: ignored.
        _result('elsewhere', IMAGES[0], State.CACHED),
    ])
    job = store.get_job(job.id)
    by_key = {(r.host, r.image_id): r for r in job.results}
    cached = by_key['h1', IMAGES[0].id]
    assert cached.state is State.CACHED
    assert cached.method is objects.Method.FILE
    assert cached.bytes == 10 and cached.seconds == 2.5
    assert cached.started_at == start and cached.finished_at == end
    assert cached.cell == 'c1'
    assert by_key['h1', IMAGES[1].id].reason == 'sha512 mismatch'
    assert job.counts == {'cached': 1, 'existing': 1, 'error': 1,
                          'unsupported': 0, 'skipped': 0, 'pending': 3,
                          'running': 0}
    assert len(job.results) == 6


def test_record_results_overwrites(store):
    job = _job(store)
    store.record_results(job.id, [_result('h3', IMAGES[0], State.ERROR,
                                          reason='first')])
    store.record_results(job.id, [_result('h3', IMAGES[0], State.CACHED)])
    row = [r for r in store.get_job(job.id).results
           if r.host == 'h3' and r.image_id == IMAGES[0].id][0]
    assert row.state is State.CACHED and row.reason is None


def test_record_progress_writes_several_jobs_at_once(store):
    first, second = _job(store), _job(store)
    store.cancel_job(second.id, 'cancelled by request')
    lost = store.record_progress([(first.id, 'h2'), (second.id, 'h2')], [
        (first.id, [_result('h1', IMAGES[0], State.CACHED, bytes=10),
                    _result('h1', IMAGES[1], State.EXISTING)]),
        (second.id, [_result('h1', IMAGES[0], State.ERROR, reason='boom')]),
        (first.id, [_result('h3', IMAGES[1], State.SKIPPED,
                            reason='down')]),
        (second.id, []),
    ])
    assert lost == [(second.id, 'h2')]
    assert store.record_progress([], []) == []
    rows = {(r.host, r.image_id): r for r in store.get_job(first.id).results}
    assert rows['h1', IMAGES[0].id].bytes == 10
    assert rows['h1', IMAGES[1].id].state is State.EXISTING
    assert rows['h3', IMAGES[1].id].reason == 'down'
    assert rows['h2', IMAGES[0].id].state is State.RUNNING
    assert store.get_job(first.id).counts['pending'] == 1
    other = {(r.host, r.image_id): r for r in store.get_job(second.id).results}
    # NOTE: a result is the truth even after a cancel skipped its row.
    assert other['h1', IMAGES[0].id].state is State.ERROR
    assert other['h1', IMAGES[1].id].state is State.SKIPPED
    assert store.get_job(second.id).counts['skipped'] == 5


def test_set_host_state(store):
    job = _job(store)
    assert store.set_host_state(job.id, 'h1', State.RUNNING) == 2
    store.record_results(job.id, [_result('h2', IMAGES[0], State.CACHED)])
    moved = store.set_host_state(job.id, 'h2', State.SKIPPED,
                                 only_from=State.PENDING, reason='down')
    assert moved == 1
    rows = {(r.host, r.image_id): r for r in store.get_job(job.id).results}
    assert rows['h1', IMAGES[0].id].state is State.RUNNING
    assert rows['h2', IMAGES[0].id].state is State.CACHED
    assert rows['h2', IMAGES[1].id].state is State.SKIPPED
    assert rows['h2', IMAGES[1].id].reason == 'down'
    assert store.set_host_state(job.id, 'nobody', State.ERROR) == 0


def test_set_job_state_timestamps(store):
    job = _job(store)
    store.set_job_state(job.id, JobState.RUNNING)
    running = store.get_job(job.id)
    assert running.state is JobState.RUNNING
    assert running.started_at is not None and running.finished_at is None
    assert running.started_at >= job.created_at

    # Running again (a resumed job) keeps the first start.
    store.set_job_state(job.id, JobState.RUNNING)
    assert store.get_job(job.id).started_at == running.started_at

    store.set_job_state(job.id, JobState.FAILED, reason='inventory gone')
    failed = store.get_job(job.id)
    assert failed.state is JobState.FAILED
    assert failed.reason == 'inventory gone'
    assert failed.finished_at >= failed.started_at
    assert failed.seconds >= 0

    # A state change without a reason keeps the old one.
    other = _job(store)
    store.set_job_state(other.id, JobState.RUNNING, reason='resumed')
    store.set_job_state(other.id, JobState.DONE)
    assert store.get_job(other.id).reason == 'resumed'


def test_final_state_without_start(store):
    job = _job(store)
    store.set_job_state(job.id, JobState.CANCELLED)
    job = store.get_job(job.id)
    assert job.started_at is None and job.finished_at is not None


def test_unfinished_jobs(store):
    pending = _job(store)
    running = _job(store)
    done = _job(store)
    other = _job(store, conductor='cond-2')
    store.set_job_state(running.id, JobState.RUNNING)
    store.set_job_state(done.id, JobState.RUNNING)
    store.set_job_state(done.id, JobState.DONE)
    assert store.unfinished_jobs('cond-1') == [pending.id, running.id]
    assert store.unfinished_jobs('cond-2') == [other.id]
    assert store.unfinished_jobs('cond-3') == []


def test_list_jobs_newest_first_with_counts(store):
    first = _job(store, aggregate='a')
    second = _job(store, aggregate='b', hosts=[('x', None)])
    store.record_results(second.id, [_result('x', IMAGES[0],
                                             State.CACHED)])
    jobs = store.list_jobs()
    assert [j.id for j in jobs] == [second.id, first.id]
    assert all(j.results is None for j in jobs)
    assert jobs[0].hosts == 1
    assert jobs[0].counts['cached'] == 1 and jobs[0].counts['pending'] == 1
    assert jobs[1].hosts == 3 and jobs[1].counts['pending'] == 6
    assert jobs[0].image_ids == [i.id for i in IMAGES]


def test_list_jobs_filters(store):
    a1 = _job(store, aggregate='a')
    b1 = _job(store, aggregate='b')
    a2 = _job(store, aggregate='a')
    store.set_job_state(a2.id, JobState.RUNNING)
    store.set_job_state(a2.id, JobState.DONE)
    assert [j.id for j in store.list_jobs(aggregate='a')] == [a2.id, a1.id]
    assert [j.id for j in store.list_jobs(state='pending')] == [b1.id,
                                                                a1.id]
    assert [j.id for j in store.list_jobs(aggregate='a',
                                          state='done')] == [a2.id]
    assert store.list_jobs(aggregate='zzz') == []


def test_list_jobs_pagination(store):
    created = [_job(store, aggregate='p').id for _ in range(7)]
    newest_first = list(reversed(created))
    pages, marker = [], None
    while True:
        page = store.list_jobs(limit=3, marker=marker)
        if not page:
            break
        pages.append([j.id for j in page])
        marker = page[-1].id
    assert pages == [newest_first[0:3], newest_first[3:6],
                     newest_first[6:7]]


def test_pagination_with_equal_timestamps(store):
    """Jobs created in the same instant are still paged without gaps."""
    ids = sorted(str(uuid.uuid4()) for _ in range(5))
    for job_id in ids:
        _job(store, job_id=job_id)
    # Force one created_at for all of them.
    import sqlalchemy as sa

    from precache.db import models
    with store.engine.begin() as conn:
        conn.execute(sa.update(models.Job).values(
            created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)))
    seen, marker = [], None
    for _ in range(5):
        page = store.list_jobs(limit=2, marker=marker)
        if not page:
            break
        seen += [j.id for j in page]
        marker = page[-1].id
    assert seen == sorted(ids, reverse=True)


def test_concurrent_record_results(store):
    hosts = [('host-%02d' % i, 'c%d' % (i % 3)) for i in range(16)]
    job = _job(store, hosts=hosts)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        try:
            start.wait(10)
            for host, _ in hosts[index::8]:
                store.set_host_state(job.id, host, State.RUNNING)
                store.record_results(job.id, [
                    _result(host, image, State.CACHED, bytes=image.size)
                    for image in IMAGES])
                store.get_job(job.id, with_results=False)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    job = store.get_job(job.id)
    assert job.counts['cached'] == 32
    assert sum(r.bytes for r in job.results) == 16 * 30


def test_sqlite_file_directory_is_created(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'deep' / 'er' / 'jobs.sqlite')
    store = JobStore(url)
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql('SELECT 1')
    finally:
        store.close()
    assert (tmp_path / 'deep' / 'er' / 'jobs.sqlite').exists()


def test_default_store_url(tmp_path):
    store = JobStore()
    try:
        assert store.url == 'sqlite:///%s' % (tmp_path / 'state' /
                                              'precache.sqlite')
    finally:
        store.close()
