"""Whole jobs on the server job stores operators run: PostgreSQL and
MariaDB, migrated by ``precache-manage db sync``, with a conductor and
agents as separate processes over RabbitMQ."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa

from precache import objects, rpc
from tests.functional.harness import (
    Cluster,
    db_sync,
    results_by_host,
)

State = objects.HostImageState


@pytest.fixture(params=[pytest.param('postgres', marks=pytest.mark.postgres),
                        pytest.param('mariadb', marks=pytest.mark.mariadb)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh server database for this test, migrated as an operator
    does (overrides the session's SQLite store)."""
    return db_sync(request.getfixturevalue('%s_url' % request.param),
                   str(tmp_path))


def test_cache_then_existing(cluster: Cluster) -> None:
    images = [cluster.make_image('alpha', blocks=6),
              cluster.make_image('beta', blocks=4)]
    shorts = ['cmp1', 'cmp2', 'cmp3']
    aggregate = cluster.add_aggregate('compute', shorts)
    agents = cluster.start(shorts)

    job = cluster.wait_job(cluster.submit(aggregate, images).id)
    assert job.state is objects.JobState.DONE, job.reason
    by_host = results_by_host(job)
    assert set(by_host) == {agent.host for agent in agents.values()}
    for agent in agents.values():
        for image in images:
            result = by_host[agent.host][image.id]
            assert (result.state, result.reason) == (State.CACHED, None)
            assert result.bytes == image.size
            assert os.path.getsize(agent.cache_path(image.id)) == image.size

    again = cluster.wait_job(cluster.submit(aggregate, images).id)
    assert again.state is objects.JobState.DONE, again.reason
    assert {r.state for r in again.results or []} == {State.EXISTING}
    assert again.counts['existing'] == 6
    # Newest first: timestamps to the microsecond (MySQL's default
    # DATETIME drops them, and two jobs of one second tie).
    listed = cluster.api.list_jobs(rpc.request_context(), aggregate)
    assert [j.id for j in listed] == [again.id, job.id]
    assert again.created_at.microsecond or job.created_at.microsecond


@pytest.mark.parametrize('db_url', [
    pytest.param('mariadb', marks=pytest.mark.mariadb)], indirect=True)
def test_a_failing_store_gives_each_row_one_line(cluster: Cluster,
                                                 db_url: str) -> None:
    """The database refuses to record hosts started or done: the job
    fails, each row says so in one line, and the conductor's log has the
    statement."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_claims BEFORE UPDATE ON host_results "
            "FOR EACH ROW BEGIN IF NEW.state <> 'error' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'writes refused'; "
            "END IF; END")
    engine.dispose()
    cluster.log_errors_expected = True
    image = cluster.make_image('gamma', blocks=2)
    aggregate = cluster.add_aggregate('compute', ['cmp1', 'cmp2'])
    cluster.start(['cmp1', 'cmp2'])

    job = cluster.wait_job(cluster.submit(aggregate, [image]).id)
    assert job.state is objects.JobState.FAILED
    assert job.reason is not None
    rows = job.results or []
    assert len(rows) == 2
    for row in rows:
        assert row.state is State.ERROR
        assert row.reason == job.reason
        assert '\n' not in row.reason and 'SQL' not in row.reason
        assert re.search(r'job store error: \w+: \(1644, .writes refused.\)',
                         row.reason), row.reason
    assert cluster.conductor is not None
    log = cluster.conductor.log()
    assert 'UPDATE host_results' in log
    statements = [line for line in log.splitlines() if '[SQL: ' in line]
    assert statements and all('UPDATE host_results' in line
                              for line in statements)
