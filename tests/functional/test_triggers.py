"""Windows, cron, schedules, reconcile and dedupe with the conductor and
agents as processes over RabbitMQ."""

from __future__ import annotations

import datetime
import json
import re
import time
import uuid
from typing import Any

from precache import objects
from tests.functional.conductors import add_conductor
from tests.functional.harness import (
    Cluster,
    Service,
    results_by_host,
)

State = objects.HostImageState
JobState = objects.JobState

#: 3 blocks of 64 KiB at 64 KiB/s: each host takes about 3 s.
RATE_KIB = 64
BLOCKS = 3
SUMMARY = re.compile(r'^Job (\S+) (\w+): (\d+) cached, (\d+) existing, '
                     r'(\d+) error, (\d+) unsupported, (\d+) skipped'
                     r' in \d+\.\ds$')


def test_window_closing_mid_job(cluster: Cluster) -> None:
    """One host at a time, ~3 s each, a 5 s window: the hosts not started
    by the deadline are skipped, the job expired, and no agent started
    after the deadline (by the agents' own clocks and logs)."""
    image = cluster.make_image('window', blocks=BLOCKS)
    shorts = ['cmp1', 'cmp2', 'cmp3', 'cmp4']
    aggregate = cluster.add_aggregate('compute', shorts)
    agents = cluster.start({s: {'download_rate_limit': RATE_KIB}
                            for s in shorts})

    job = cluster.submit(aggregate, [image], window=5,
                         max_concurrent_hosts=1)
    deadline = datetime.datetime.fromisoformat(job.options['deadline'])
    job = cluster.wait_job(job.id, timeout=60)

    assert job.state is JobState.EXPIRED, job.counts
    assert job.reason == 'window closed'
    by_host = results_by_host(job)
    started = {h: r[image.id] for h, r in by_host.items()
               if r[image.id].state is not State.SKIPPED}
    skipped = {h: r[image.id] for h, r in by_host.items()
               if r[image.id].state is State.SKIPPED}
    assert started and skipped, by_host
    for result in started.values():
        assert result.state is State.CACHED, result.reason
        # NOTE: the agent's own timestamp of its work on the image.
        assert result.started_at <= deadline, (result, deadline)
    for result in skipped.values():
        assert result.reason == 'window closed'
    for agent in agents.values():
        called = agent.count(r'RPC cache_images called .* of job %s'
                             % job.id)
        assert called == (1 if agent.host in started else 0), agent.host
    assert cluster.conductor.count(
        r'Job %s: window closed at .*; %d host\(s\) not started'
        % (job.id, len(skipped))) == 1
    assert cluster.conductor.count(
        r'Job %s: %d cached, 0 existing, 0 error, 0 unsupported, '
        r'%d skipped in .* \(window closed\)'
        % (job.id, len(started), len(skipped))) == 1


def test_cron_exit_codes_and_one_summary_line(cluster: Cluster) -> None:
    good = cluster.make_image('good')
    bad = cluster.make_image('bad', os_hash_value='0' * 128)
    aggregate = cluster.add_aggregate('compute', ['cmp1', 'cmp2'])
    cluster.start(['cmp1', 'cmp2'])

    def cache(*images, extra=()):
        return cluster.manage(
            '--timeout', '5', 'cache', '--aggregate', aggregate,
            *[a for i in images for a in ('--image', i)], '--wait', *extra)

    def summary(done, code):
        report = 'exit %s\nstdout: %r\nstderr: %r' % (
            done.returncode, done.stdout, done.stderr)
        assert done.returncode == code, report
        assert done.stderr == '', report
        lines = done.stdout.splitlines()
        assert len(lines) == 1, report
        match = SUMMARY.match(lines[0])
        assert match, report
        return match.groups()

    # 0: everything resident (with a window, as cron would give one).
    fields = summary(cache(good.id, extra=('--window', '2h')), 0)
    assert fields[1:] == ('done', '2', '0', '0', '0', '0')
    job = cluster.get_job(fields[0])
    assert job.options['source'] == 'cli'
    deadline = datetime.datetime.fromisoformat(job.options['deadline'])
    assert abs((deadline - job.created_at).total_seconds() - 7200) < 30
    # 1: some (host, image) failed.
    fields = summary(cache(good.id, bad.id,
                           extra=('--deadline', '23:59')), 1)
    assert fields[1:] == ('done', '0', '2', '2', '0', '0')
    # 2: a bad request, one line on stderr, nothing recorded.
    done = cache(str(uuid.uuid4()))
    assert done.returncode == 2 and done.stdout == ''
    assert done.stderr.startswith('ERROR: Image ')
    assert len(done.stderr.splitlines()) == 1
    # 3: the broker is up but no conductor answers within --timeout.
    assert cluster.conductor.stop() == 0
    started = time.monotonic()
    done = cache(good.id)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout == ''
    assert done.stderr == ('ERROR: no conductor answered on the message '
                           'bus (is precache-conductor running?)\n')
    assert time.monotonic() - started < 30
    # --json stays a document (no summary line) for scripts.
    cluster.conductor.start().wait_ready()
    done = cluster.manage('cache', '--aggregate', aggregate, '--image',
                          good.id, '--wait', '--json')
    assert done.returncode == 0
    assert json.loads(done.stdout)['counts']['existing'] == 2


#: Every ten seconds (croniter's sixth field is the second).
EVERY_TEN_SECONDS = '* * * * * */10'


def three_conductors(cluster: Cluster,
                     **sections: dict[str, Any]) -> list[Service]:
    """Three conductors with the same settings (and ``sections``) and job
    store, started; the cluster's agents too."""
    first = cluster.make_conductor()
    for section, options in sections.items():
        first.rewrite_config(section, **options)
    conductors = [first, add_conductor(cluster, 'conductor2'),
                  add_conductor(cluster, 'conductor3')]
    started = [c.start() for c in conductors]
    for service in started + list(cluster.agents.values()):
        service.wait_ready()
    return conductors


def wait_jobs(cluster: Cluster, aggregate: str, count: int,
              timeout: float = 60) -> list[objects.Job]:
    """The aggregate's jobs, once there are ``count``, all ended."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = cluster.api.list_jobs({}, aggregate=aggregate)
        if len(jobs) >= count and all(j.state.is_final for j in jobs):
            return jobs
        assert time.monotonic() < deadline, (
            [(j.state, j.options) for j in jobs], cluster.describe())
        time.sleep(0.2)


def test_schedule_runs_once_across_three_conductors(
        cluster: Cluster) -> None:
    """All three conductors carry a schedule due every ten seconds; each
    starts with its latest occurrence inside its window: over two
    occurrences (and more), one job per occurrence, not three."""
    image = cluster.make_image('nightly')
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    name = 'every-ten-seconds'
    cluster.agent('cmp1').start()
    conductors = three_conductors(cluster, **{
        'schedules': {'names': name, 'check_interval': 1},
        'schedule:%s' % name: {'cron': EVERY_TEN_SECONDS,
                               'aggregates': aggregate, 'images': image.id,
                               'window': '1h'}})

    jobs = wait_jobs(cluster, aggregate, 2, timeout=60)
    first = min(jobs, key=lambda j: j.created_at)
    assert first.counts['cached'] == 1, first.counts
    for job in jobs:
        assert job.state is JobState.DONE, job.counts
        assert job.options['source'] == 'schedule:%s' % name
        assert job.options['dedupe'] is True
    # The conductors looked (every second) for a while more: still one
    # job per occurrence (its deadline is the occurrence plus the
    # window), each started by whichever conductor claimed it.
    time.sleep(3)
    jobs = cluster.api.list_jobs({}, aggregate=aggregate)
    occurrences = sorted({j.options['deadline'] for j in jobs})
    assert len(jobs) == len(occurrences) >= 2, [j.options for j in jobs]
    key = re.escape('%s/%s' % (name, aggregate))
    for deadline in occurrences[:2]:
        due = datetime.datetime.fromisoformat(deadline) \
            - datetime.timedelta(hours=1)
        pattern = r'Schedule %s: run of %s is job' % (
            key, re.escape(due.isoformat()))
        assert sum(c.count(pattern) for c in conductors) == 1, pattern


def test_periodic_reconcile_runs_once_across_three_conductors(
        cluster: Cluster) -> None:
    """Three conductors reconcile an aggregate every ten seconds, and
    every image is due again (refresh_age 1 s): one job per occurrence,
    not three."""
    image = cluster.make_image('desired')
    aggregate = cluster.add_aggregate('compute', ['cmp1', 'cmp2'])
    cluster.aggregates[-1]['metadata'] = {'precache:images': image.id}
    cluster._write_inventory()
    for short in ('cmp1', 'cmp2'):
        cluster.agent(short).start()
    interval = 10
    three_conductors(cluster, schedules={'check_interval': 1}, conductor={
        'reconcile_interval': interval, 'reconcile_aggregates': aggregate,
        'refresh_age': 1})

    jobs = wait_jobs(cluster, aggregate, 2, timeout=60)
    time.sleep(3)
    jobs = cluster.api.list_jobs({}, aggregate=aggregate)
    # NOTE: a job is made within a check (1 s) of its occurrence, a
    # multiple of the interval.
    occurrences = sorted({int(j.created_at.timestamp()) // interval
                          for j in jobs})
    assert len(jobs) == len(occurrences) >= 2, [
        (j.created_at, j.options) for j in jobs]
    for job in jobs:
        assert job.options['source'] == 'reconcile'
        assert job.image_ids == [image.id]
    jobs.sort(key=lambda j: j.created_at)
    assert jobs[0].counts['cached'] == 2, jobs[0].counts
    for job in jobs[1:]:
        assert job.counts['existing'] == 2, job.counts


def test_reconcile_and_dedupe(cluster: Cluster) -> None:
    listed = cluster.make_image('listed')
    by_property = cluster.make_image('by-property')
    cluster.catalog[-1]['precache_aggregates'] = cluster.host('compute')
    cluster._write_catalog()
    aggregate = cluster.add_aggregate('compute', ['cmp1', 'cmp2'])
    cluster.aggregates[-1]['metadata'] = {'precache:images': listed.id}
    cluster._write_inventory()
    cluster.start({'cmp1': {}, 'cmp2': {}, 'cmp3': {
        'download_rate_limit': RATE_KIB}})

    done = cluster.manage('reconcile', '--aggregate', aggregate, '--wait')
    assert done.returncode == 0, done.stdout + done.stderr
    job = cluster.get_job(SUMMARY.match(done.stdout.strip()).group(1))
    assert job.image_ids == [listed.id, by_property.id]
    assert job.counts['cached'] == 4
    done = cluster.manage('reconcile', '--aggregate', aggregate)
    assert done.stdout == ('aggregate %s has every desired image on every '
                           'host: nothing to do\n' % aggregate)

    # A host joins: reconcile starts a job for it alone; asked again
    # while that job runs (slowly), the same job comes back.
    cluster.aggregates[-1]['hosts'].append(cluster.host('cmp3'))
    cluster._write_inventory()
    first = cluster.api.reconcile({}, aggregate)
    again = cluster.api.reconcile({}, aggregate, hosts=[cluster.host(
        'cmp3')], source='consumer')
    assert first is not None and again is not None
    assert again.id == first.id
    also = cluster.submit(aggregate, [listed], dedupe=True,
                          hosts=[cluster.host('cmp3')])
    assert also.id == first.id
    job = cluster.wait_job(first.id)
    assert {r.host for r in job.results} == {cluster.host('cmp3')}
    assert job.counts['cached'] == 2
    assert cluster.api.reconcile({}, aggregate) is None
