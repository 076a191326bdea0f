"""Windows, cron, schedules, reconcile and dedupe with the conductor and
agents as processes over RabbitMQ."""

from __future__ import annotations

import datetime
import json
import os
import re
import time
import uuid

from precache import objects
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


def _second_conductor(cluster: Cluster) -> Service:
    """Another conductor with the first one's settings (schedules too)
    and job store."""
    base = cluster.conductor
    assert base is not None
    sections = {section: dict(options)
                for section, options in base.sections.items()}
    host = cluster.host('conductor2')
    sections['DEFAULT'].update(host=host, state_path=os.path.join(
        cluster.root, 'state2'))
    sections['DEFAULT'].pop('log_file', None)
    service = Service('conductor2', 'precache-conductor',
                      os.path.join(cluster.root, 'conductor2'), sections,
                      ready=r'Conductor %s started' % re.escape(host))
    cluster.services.append(service)
    return service


def test_schedule_runs_once_across_two_conductors(cluster: Cluster) -> None:
    """Both conductors carry the schedule; each starts with its latest
    occurrence inside its window: one job, not two."""
    image = cluster.make_image('nightly')
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    name = 'every-minute'
    schedule = {'schedules': {'names': name, 'check_interval': 1},
                'schedule:%s' % name: {'cron': '* * * * *',
                                       'aggregates': aggregate,
                                       'images': image.id,
                                       'window': '1h'}}
    cluster.agent('cmp1').start()
    first = cluster.make_conductor()
    for section, options in schedule.items():
        first.rewrite_config(section, **options)
    second = _second_conductor(cluster)
    for service in (first.start(), second.start(), cluster.agents['cmp1']):
        service.wait_ready()

    deadline = time.monotonic() + 60
    while True:
        jobs = cluster.api.list_jobs({}, aggregate=aggregate)
        if jobs:
            break
        assert time.monotonic() < deadline, cluster.describe()
        time.sleep(0.2)
    job = cluster.wait_job(jobs[0].id)
    assert job.state is JobState.DONE and job.counts['cached'] == 1
    assert job.options['source'] == 'schedule:%s' % name
    assert job.options['dedupe'] is True
    # Both conductors looked (every second) for a while: still one job
    # per occurrence, each started by whichever claimed it.
    time.sleep(3)
    jobs = cluster.api.list_jobs({}, aggregate=aggregate)
    occurrences = {j.options['deadline'] for j in jobs}
    assert len(jobs) == len(occurrences), [j.options for j in jobs]
    started = first.count(r'Schedule %s/%s: run of' % (name, aggregate)) \
        + second.count(r'Schedule %s/%s: run of' % (name, aggregate))
    assert started == len(jobs)


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
