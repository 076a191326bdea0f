"""Whole jobs over RabbitMQ: a conductor and agents as separate processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from precache import objects
from tests.functional.harness import (
    Cluster,
    cache_name,
    results_by_host,
    sha512_of,
)

State = objects.HostImageState


def allocated(path: str) -> int:
    """Bytes of disk a file really uses."""
    return os.stat(path).st_blocks * 512


def test_cache_then_existing_on_three_agents(cluster: Cluster) -> None:
    """Two images on three agents: cached; again: existing, touched."""
    images = [cluster.make_image('alpha', blocks=12),
              cluster.make_image('beta', blocks=6)]
    shorts = ['cmp1', 'cmp2', 'cmp3']
    aggregate = cluster.add_aggregate('compute', shorts)
    agents = cluster.start(shorts)

    # NOTE: the first run goes through the CLI, as cron would run it.
    done = cluster.manage('cache', '--aggregate', aggregate,
                          *[a for i in images for a in ('--image', i.id)],
                          '--wait', '--json')
    assert done.returncode == 0, done.stdout + done.stderr
    job = objects.Job.from_dict(json.loads(done.stdout))
    assert job.state is objects.JobState.DONE
    assert job.aggregate == aggregate
    assert job.image_ids == [i.id for i in images]
    assert job.hosts == 3
    assert job.counts['cached'] == 6
    by_host = results_by_host(job)
    assert set(by_host) == {a.host for a in agents.values()}
    for agent in agents.values():
        for image in images:
            result = by_host[agent.host][image.id]
            assert result.state is State.CACHED, result.reason
            assert result.method is objects.Method.FILE
            assert result.bytes == image.size
            assert result.reason is None
            assert result.started_at <= result.finished_at
            path = agent.cache_path(image.id)
            assert os.path.getsize(path) == image.size
            assert sha512_of(path) == image.os_hash_value
            if allocated(image.path) < image.size:
                # Zero runs stayed holes, as in the (sparse) source.
                assert allocated(path) < image.size
        assert agent.temp_files() == []
        assert agent.count(r'RPC cache_images called for 2 image') == 1
    assert cluster.conductor.count(
        r'Job %s: 6 cached, 0 existing, 0 error, 0 unsupported, '
        r'0 skipped in' % job.id) == 1

    # Age the cache files, as if they had sat there for an hour.
    old = time.time() - 3600
    for agent in agents.values():
        for image in images:
            os.utime(agent.cache_path(image.id), (old, old))

    # NOTE: the rerun goes through the RPC API, as the API service would.
    before = time.time()
    job = cluster.wait_job(cluster.submit(aggregate, images).id)
    assert job.state is objects.JobState.DONE
    assert job.counts['existing'] == 6
    by_host = results_by_host(job)
    for agent in agents.values():
        for image in images:
            result = by_host[agent.host][image.id]
            assert result.state is State.EXISTING, result.reason
            assert result.bytes == 0
            path = agent.cache_path(image.id)
            mtime = os.stat(path).st_mtime
            # NOTE: the file system clock ticks coarsely; 1s of slack.
            assert mtime >= before - 1, (path, mtime, before)
            assert sha512_of(path) == image.os_hash_value
        assert agent.files() == sorted(cache_name(i.id) for i in images)

    # After real work, every service stops cleanly on SIGTERM.
    # NOTE: usually 1-5 s; the slack is for a busy machine or broker.
    problems = cluster.stop_all(timeout=30)
    assert problems == [], '\n'.join(problems) + '\n' + cluster.describe()


def test_stopped_agents_are_skipped_and_the_job_ends(
        cluster: Cluster) -> None:
    """An agent stopped and one never started: skipped, others cached."""
    image = cluster.make_image('gamma')
    aggregate = cluster.add_aggregate(
        'compute', ['up1', 'up2', 'stopped', 'never'])
    agents = cluster.start(['up1', 'up2', 'stopped'])
    stopped = agents['stopped']
    assert stopped.stop() == 0, stopped.describe()
    # NOTE: the goodbye is a cast: on a busy machine it may still wait in
    # the conductor's queue, and a job started before it is handled would
    # call the stopped agent (error after call_monitor_timeout).
    cluster.conductor.wait_log(r'Agent %s is stopping' % re.escape(
        stopped.host), timeout=30)

    done = cluster.manage('cache', '--aggregate', aggregate,
                          '--image', image.id, '--wait', '--json')
    assert done.returncode == 1, done.stdout + done.stderr
    job = objects.Job.from_dict(json.loads(done.stdout))
    assert job.state is objects.JobState.DONE
    assert job.counts['cached'] == 2
    assert job.counts['skipped'] == 2
    by_host = results_by_host(job)
    for short in ('up1', 'up2'):
        result = by_host[cluster.host(short)][image.id]
        assert result.state is State.CACHED, result.reason
        assert sha512_of(agents[short].cache_path(image.id)) \
            == image.os_hash_value
    # The stopped agent said goodbye; the one never started is unknown to
    # the registry, so its ping decides.
    stopped_result = by_host[cluster.host('stopped')][image.id]
    assert stopped_result.state is State.SKIPPED
    assert stopped_result.reason.startswith('agent stopped (at ')
    never = by_host[cluster.host('never')][image.id]
    assert never.state is State.SKIPPED
    assert never.reason == 'agent not responding (no answer to ping within 2s)'
    assert stopped.files() == []
    # The job took about one ping timeout.
    assert job.seconds is not None and job.seconds < 2 * 2


def test_hash_mismatch_is_an_error_and_leaves_no_file(
        cluster: Cluster) -> None:
    """A wrong os_hash_value: error naming the mismatch, nothing left."""
    good = cluster.make_image('good')
    wrong = hashlib.sha512(b'some other image').hexdigest()
    bad = cluster.make_image('bad', blocks=10, os_hash_value=wrong)
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    agent = cluster.start(['cmp1'])['cmp1']

    job = cluster.wait_job(cluster.submit(aggregate, [good, bad]).id)
    assert job.state is objects.JobState.DONE
    results = results_by_host(job)[agent.host]
    assert results[good.id].state is State.CACHED, results[good.id].reason
    result = results[bad.id]
    assert result.state is State.ERROR
    assert result.method is None
    assert 'sha512 mismatch' in result.reason
    assert 'got %s, expected %s' % (bad.os_hash_value, wrong) \
        in result.reason
    assert bad.id in result.reason
    assert not os.path.exists(agent.cache_path(bad.id))
    assert not os.path.exists(agent.temp_path(bad.id))
    assert agent.files() == [cache_name(good.id)]
    assert cluster.conductor.count(
        r'image %s failed on 1 host\(s\)' % bad.id) == 1


def test_each_image_fails_or_succeeds_on_its_own(cluster: Cluster) -> None:
    """Wrong size and unreadable location, next to a good image."""
    good = cluster.make_image('good')
    # NOTE: Image.size is the file's; the catalog claims another size.
    short_size = 9 * 64 * 1024
    short = cluster.make_image('short', blocks=8, size=short_size)
    long = cluster.make_image('long', blocks=8, size=8 * 64 * 1024 - 1)
    gone = cluster.make_image('gone')
    os.unlink(gone.path)
    aggregate = cluster.add_aggregate('compute', ['cmp1'])
    agent = cluster.start(['cmp1'])['cmp1']

    images = [good, short, long, gone]
    job = cluster.wait_job(cluster.submit(aggregate, images).id)
    assert job.state is objects.JobState.DONE
    results = results_by_host(job)[agent.host]
    assert results[good.id].state is State.CACHED, results[good.id].reason
    assert results[short.id].state is State.ERROR
    assert 'got %d bytes, expected %d' % (short.size, short_size) \
        in results[short.id].reason
    assert results[long.id].state is State.ERROR
    assert 'more than the expected %d bytes' % (long.size - 1) \
        in results[long.id].reason
    assert results[gone.id].state is State.UNSUPPORTED
    assert results[gone.id].reason == 'file: no readable file location'
    assert agent.files() == [cache_name(good.id)]
    assert job.counts['cached'] == 1
    assert job.counts['error'] == 2
    assert job.counts['unsupported'] == 1
