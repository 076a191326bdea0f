"""What differs between SQLite, PostgreSQL and MariaDB, made the same:
lock races run again, errors in one line, timestamps to the
microsecond, strings compared exactly."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from precache import exception, objects
from precache.db import migration
from precache.db.api import JobStore, create_engine
from tests.unit.db.conftest import KINDS
from tests.unit.db.test_api import IMAGES, _job, _result

State = objects.HostImageState
SERVERS = [kind for kind in KINDS if kind != 'sqlite']


def _wait_for_lock_wait(engine: sa.Engine) -> None:
    """Until a transaction of the server waits for a row lock."""
    if engine.dialect.name == 'postgresql':
        query = ("SELECT count(*) FROM pg_stat_activity WHERE "
                 "wait_event_type = 'Lock' AND datname = current_database()")
    else:
        query = ("SELECT count(*) FROM information_schema.innodb_trx "
                 "WHERE trx_state = 'LOCK WAIT'")
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while not conn.exec_driver_sql(query).scalar():
            assert time.monotonic() < deadline, 'no transaction waited'
            time.sleep(0.02)


def _provoke_deadlock(store, caplog) -> tuple[objects.Job, list, bool]:
    """The store writes h1's rows then h2's; another transaction holds
    h2's and then takes h1's: the server kills one of the two as a
    deadlock. (job, the store's outcome, whether the other was killed)."""
    job = _job(store, hosts=[('h1', None), ('h2', None)])
    other = create_engine(store.url)
    results = [_result(host, image, State.CACHED, bytes=image.size)
               for host in ('h1', 'h2') for image in IMAGES]
    outcome: list[BaseException | None] = []

    def record() -> None:
        try:
            store.record_results(job.id, results)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - asserted below
            outcome.append(error)

    writer = threading.Thread(target=record)
    other_killed = False
    try:
        with other.connect() as conn, conn.begin():
            conn.execute(sa.text("UPDATE host_results SET bytes = 7 WHERE "
                                 "job_id = :j AND host = 'h2'"),
                         {'j': job.id})
            # NOTE: MariaDB kills the transaction that changed fewer rows.
            conn.execute(sa.text('INSERT INTO store_locks (name, taken) '
                                 'VALUES (:n, 0)'),
                         [{'n': 'weight-%d' % i} for i in range(50)])
            with caplog.at_level(logging.WARNING,
                                 logger='precache.db.retry'):
                writer.start()
                _wait_for_lock_wait(other)
                conn.execute(sa.text("UPDATE host_results SET bytes = 7 "
                                     "WHERE job_id = :j AND host = 'h1'"),
                             {'j': job.id})
            conn.execute(sa.text('DELETE FROM store_locks'))
    except sa.exc.OperationalError as error:
        # NOTE: PostgreSQL kills the transaction whose deadlock_timeout
        # (1 s) runs out first after the cycle closed; on a loaded machine
        # that can be this one instead of the store's.
        assert 'deadlock' in str(error).lower(), error
        other_killed = True
    writer.join(30)
    other.dispose()
    return job, outcome, other_killed


@pytest.mark.parametrize('store', SERVERS, indirect=True)
def test_a_real_deadlock_is_run_again(store, caplog):
    """The store's transaction, lighter (MariaDB) or waiting longer
    (PostgreSQL), is killed and run again once the other commits."""
    for _ in range(5):
        caplog.clear()
        job, outcome, other_killed = _provoke_deadlock(store, caplog)
        assert outcome == [None]
        if not other_killed:
            break
    assert not other_killed, 'the store was never the deadlock victim'
    rows = store.get_job(job.id).results
    assert {(r.host, r.state, r.bytes) for r in rows} == {
        (host, State.CACHED, image.size)
        for host in ('h1', 'h2') for image in IMAGES}
    retries = [r.getMessage() for r in caplog.records
               if 'lost a lock race' in r.getMessage()]
    assert len(retries) == 1, retries
    assert 'record_progress(%s)' % job.id in retries[0]
    assert '(attempt 1 of 6)' in retries[0]


def test_a_database_error_is_one_line(store, caplog):
    job = _job(store)
    with caplog.at_level(logging.ERROR, logger='precache.db.retry'):
        with pytest.raises(exception.JobStoreError) as info:
            _job(store, job_id=job.id)
    message = str(info.value)
    assert message.startswith('job store error: ')
    assert 'unique' in message.lower() or 'duplicate' in message.lower()
    assert '\n' not in message and 'INSERT' not in message
    # The statement is logged once, where it failed.
    details = [r.getMessage() for r in caplog.records]
    assert len(details) == 1 and 'INSERT INTO jobs' in details[0]
    assert store.get_job(job.id).hosts == 3


def test_hosts_differing_in_case_are_two_hosts(store):
    job = _job(store, hosts=[('Compute1', None), ('compute1', None)])
    assert job.hosts == 2
    assert store.claim_host(job.id, 'compute1')
    rows = {(r.host, r.state) for r in store.get_job(job.id).results}
    assert rows == {('Compute1', State.PENDING), ('compute1', State.RUNNING)}
    assert store.resident_images(['COMPUTE1']) == []


def test_timestamps_keep_microseconds(store):
    moment = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456,
                               tzinfo=datetime.UTC)
    job = _job(store, hosts=[('h1', None)])
    store.record_results(job.id, [_result(
        'h1', IMAGES[0], State.CACHED, started_at=moment,
        finished_at=moment, seconds=0.1 + 0.2)])
    row = store.get_job(job.id).results[0]
    assert row.finished_at == moment
    # A float and a double, not MySQL's FLOAT (0.30000001192092896).
    assert type(row.seconds) is float and row.seconds == 0.1 + 0.2


def test_0005_keeps_what_0004_stored(db_url):
    """A store made by an earlier release (on MySQL: whole seconds,
    folded case) is migrated with its jobs."""
    migration.upgrade(db_url, '0004')
    job_id = str(uuid.uuid4())
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO jobs (id, aggregate, state, images, options, "
            "created_at) VALUES (:id, 'agg', 'done', '[]', '{}', "
            "'2026-01-01 12:00:00')"), {'id': job_id})
        conn.execute(sa.text(
            "INSERT INTO host_results (job_id, host, image_id, state, "
            "bytes, seconds) VALUES (:id, 'h1', 'i1', 'cached', 5, 1.5)"),
            {'id': job_id})
    engine.dispose()
    migration.upgrade(db_url)
    store = JobStore(db_url)
    try:
        job = store.get_job(job_id)
        assert job.created_at == datetime.datetime(2026, 1, 1, 12,
                                                   tzinfo=datetime.UTC)
        assert [(r.host, r.bytes, r.seconds) for r in job.results] == [
            ('h1', 5, 1.5)]
        store.record_results(job_id, [_result(
            'h1', objects.ImageSpec(id='i1'), State.CACHED,
            finished_at=datetime.datetime(2026, 1, 1, 12, 0, 0, 5,
                                          tzinfo=datetime.UTC))])
        assert store.get_job(job_id).results[0].finished_at.microsecond \
            == 5
        store.create_job(str(uuid.uuid4()), 'agg', [], [], {}, dedupe=True)
    finally:
        store.close()


def test_a_missing_driver_names_the_extra():
    # NOTE: mysqlclient (MySQLdb) is not installed; PyMySQL is.
    with pytest.raises(exception.JobStoreError) as info:
        JobStore('mysql+mysqldb://root@127.0.0.1/precache')
    assert str(info.value) == (
        "job store error: the database driver of mysql+mysqldb://… is not "
        "installed (No module named 'MySQLdb'): pip install precache[mysql] "
        "and use mysql+pymysql://…")
