"""A host whose agent cannot answer for a while is tried again within its
job and ends cached once the agent is back."""

from __future__ import annotations

import re
import signal

from precache import objects
from tests.functional.harness import Cluster, results_by_host

State = objects.HostImageState


def test_an_agent_paused_then_resumed_during_the_backoff(
        cluster: Cluster) -> None:
    """SIGSTOP: its pings go unanswered, the host waits for its retry
    (other hosts proceed); SIGCONT in that wait: the next attempt caches.
    One log line per attempt."""
    image = cluster.make_image('retried')
    aggregate = cluster.add_aggregate('compute', ['sleepy', 'healthy'])
    agents = cluster.start(['sleepy', 'healthy'], conductor={
        'host_attempts': 4, 'host_retry_delay': 2,
        'always_ping_agents': True, 'agent_ping_timeout': 2,
        # NOTE: one slot: the healthy host runs while the other waits.
        'max_concurrent_hosts': 1})
    sleepy, healthy = agents['sleepy'], agents['healthy']
    conductor = cluster.conductor
    assert conductor is not None
    sleepy.signal(signal.SIGSTOP)
    try:
        job = cluster.submit(aggregate, [image])
        attempt = r'Job %s: host %s attempt (\d) of 4: ' % (
            job.id, re.escape(sleepy.host))
        # NOTE: the second attempt failed too; it now waits 4-6 s.
        conductor.wait_log(attempt.replace(r'(\d)', '2'), timeout=30)
    finally:
        sleepy.signal(signal.SIGCONT)
    job = cluster.wait_job(job.id, timeout=60)

    assert job.state is objects.JobState.DONE, job.counts
    by_host = results_by_host(job)
    retried = by_host[sleepy.host][image.id]
    assert retried.state is State.CACHED, retried.reason
    other = by_host[healthy.host][image.id]
    assert other.state is State.CACHED, other.reason
    # The healthy host was done while the other waited for its retry.
    assert other.finished_at < retried.started_at

    lines = [line for line in conductor.log().splitlines()
             if re.search(attempt, line)]
    assert [re.search(attempt, line).group(1) for line in lines] == [
        '1', '2', '3'], lines
    for line in lines[:2]:
        assert 'skipped (agent not responding (no answer to ping within ' \
               '2s)); 1 image(s) tried again in' in line, line
    assert lines[2].endswith('attempt 3 of 4: cached; done'), lines[2]
    assert sleepy.count(r'RPC cache_images called') == 1
