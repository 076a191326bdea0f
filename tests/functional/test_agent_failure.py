"""An agent killed in the middle of a fetch; agents that outlive their
conductor's view of them."""

from __future__ import annotations

import datetime
import os
import re
import time

import pytest
import sqlalchemy as sa

from precache import objects
from precache.db.registry import AgentRecord, RegistryStore
from tests.functional.harness import Cluster, KiB, results_by_host, sha512_of

State = objects.HostImageState

CALL_MONITOR_TIMEOUT = 2
#: How long after the kill the conductor may take to record the error.
NOTICE_WITHIN = 2 * CALL_MONITOR_TIMEOUT + 1.5


def wait_for(predicate, timeout: float, what: str,
             interval: float = 0.05) -> float:
    """Poll until ``predicate()``; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail('%s not seen within %.0fs' % (what, timeout))
        time.sleep(interval)
    return time.monotonic()


def test_agent_killed_mid_fetch(cluster: Cluster) -> None:
    """SIGKILL during a ~10 s fetch: error within ~2 heartbeats, no
    partial file, and the restarted agent cleans up and works."""
    # 1 MiB at 100 KiB/s: the fetch would take about 10 s. No zero runs,
    # so the temporary file grows steadily.
    image = cluster.make_image('slow', blocks=16, data_share=1.0)
    aggregate = cluster.add_aggregate('compute', ['victim', 'healthy'])
    agents = cluster.start(
        {'victim': {'download_rate_limit': 100}, 'healthy': {}},
        conductor={'call_monitor_timeout': CALL_MONITOR_TIMEOUT})
    victim = agents['victim']
    temp = victim.temp_path(image.id)

    job = cluster.submit(aggregate, [image])
    wait_for(lambda: os.path.exists(temp)
             and os.path.getsize(temp) >= 128 * KiB, 10,
             'a growing %s' % temp)
    fetching = objects.utcnow()
    result = results_by_host(cluster.get_job(job.id))[victim.host][image.id]
    assert result.state is State.RUNNING

    killed_at = objects.utcnow()
    victim.kill()
    killed = time.monotonic()

    def victim_result() -> objects.HostImageResult:
        job_now = cluster.get_job(job.id)
        return results_by_host(job_now)[victim.host][image.id]

    noticed = wait_for(lambda: victim_result().state.is_final,
                       4 * NOTICE_WITHIN, 'the victim\'s final state')
    print('error recorded %.2fs after the kill' % (noticed - killed))
    assert noticed - killed <= NOTICE_WITHIN, noticed - killed
    result = victim_result()
    assert result.state is State.ERROR
    assert 'agent stopped responding' in result.reason
    assert 'no heartbeat for %ds' % CALL_MONITOR_TIMEOUT in result.reason
    # The row shows the call from its start (before the fetch was seen)
    # to its end (after the kill).
    assert result.started_at < fetching < killed_at <= result.finished_at
    assert (result.finished_at - result.started_at).total_seconds() \
        == pytest.approx(result.seconds, abs=0.01)

    job = cluster.wait_job(job.id)
    assert job.state is objects.JobState.DONE
    healthy = results_by_host(job)[agents['healthy'].host][image.id]
    assert healthy.state is State.CACHED, healthy.reason

    # The killed agent left its partial download, never the final name.
    assert os.path.exists(temp)
    assert not os.path.exists(victim.cache_path(image.id))

    # Restarted (no longer rate limited), it removes the leftover first.
    victim.rewrite_config('agent', download_rate_limit=0)
    victim.start().wait_ready()
    assert victim.files() == []
    assert victim.count(r'Removed %s, left by an interrupted fetch'
                        % re.escape(temp)) == 1

    # The killed call is not redelivered; a new job caches the image.
    job = cluster.wait_job(cluster.submit(aggregate, [image]).id)
    by_host = results_by_host(job)
    assert by_host[victim.host][image.id].state is State.CACHED
    assert by_host[agents['healthy'].host][image.id].state \
        is State.EXISTING
    assert sha512_of(victim.cache_path(image.id)) == image.os_hash_value
    assert victim.temp_files() == []
    assert victim.count(r'RPC cache_images called') == 2


def test_a_restarted_conductor_asks_agents_its_rows_call_gone(
        cluster: Cluster, db_url: str) -> None:
    """Rows from before a conductor's restart say "stopped" and "down"
    for live agents: it pings them and caches there; only the host whose
    agent is really gone is skipped, after one ping timeout."""
    image = cluster.make_image('restart')
    aggregate = cluster.add_aggregate('compute', ['said-bye', 'silent',
                                                  'gone'])
    # NOTE: the conductor first, so that it receives the agents' first
    # heartbeats; none follows during the test (the rows stay as the test
    # leaves them).
    conductor = cluster.make_conductor().start()
    conductor.wait_ready()
    agents = [cluster.agent(short) for short in ('said-bye', 'silent')]
    for agent in agents:
        agent.rewrite_config('registry', heartbeat_interval=3600)
        agent.start()
    for agent in agents:
        agent.wait_ready()
    store = RegistryStore(sa.create_engine(db_url))
    hosts = [agent.host for agent in agents]
    wait_for(lambda: all(store.get(h) for h in hosts), 10,
             'the agents\' first heartbeats')
    assert conductor.stop() == 0

    # While no conductor ran: one agent said goodbye and came back, the
    # other's heartbeats were lost, a third host's agent died.
    long_ago = objects.utcnow() - datetime.timedelta(minutes=10)
    for host in hosts:
        store.heartbeat(store.get(host), now=long_ago,
                        stopping=host == cluster.host('said-bye'))
    store.heartbeat(AgentRecord(host=cluster.host('gone'),
                                rpc_version='1.0'), now=long_ago)
    conductor.start().wait_ready()

    job = cluster.wait_job(cluster.submit(aggregate, [image]).id)
    by_host = results_by_host(job)
    for host in hosts:
        result = by_host[host][image.id]
        assert result.state is State.CACHED, (host, result.reason)
        assert conductor.count(r'Agent %s answered its ping'
                               % re.escape(host)) == 1
    gone = by_host[cluster.host('gone')][image.id]
    assert gone.state is State.SKIPPED
    assert re.fullmatch(r'agent down \(no heartbeat for 6\d\ds, no answer '
                        r'to ping within 2s\)', gone.reason), gone.reason
    # The dead host cost one ping timeout (2 s), in parallel with the rest.
    assert job.seconds is not None and job.seconds < 2 * 2, job.seconds
