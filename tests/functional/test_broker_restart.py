"""Broker restarts in the middle of a job, on a RabbitMQ node of the
module's own (see broker.py): three conductors and twenty agents as
processes, a job of twenty hosts slowed by the agents' rate limit.

The conductors retry a host as an operator's would (RETRIES): whatever
the outage does to the calls in flight, the job ends done with the image
on every host (cached, or existing when the agent's answer was lost and a
retry found its file), the retries in the conductors' logs, and every
service is back on the bus: a rerun finds the image on every host
(existing) or caches it.
Both tests share one cluster (starting 23 processes takes 25-45 s on two
cores), each with an image of its own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import oslo_messaging as messaging
import pytest

from precache import objects, rpc
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from tests.functional.broker import PrivateBroker
from tests.functional.conductors import add_conductor
from tests.functional.harness import Cluster, Service

State = objects.HostImageState
JobState = objects.JobState

HOSTS = 20
CONDUCTORS = 3
#: 5 hosts at a time, 3 blocks of 64 KiB at 64 KiB/s each (~3 s): four
#: waves, ~12 s undisturbed.
LIMIT = 5
RATE_KIB = 64
BLOCKS = 3
#: Five attempts, 2 s doubling between them (2, 4, 8, 16 s plus jitter):
#: a host whose ping is lost fails within agent_ping_timeout (2 s), so its
#: attempts span at least ~38 s (one lost call: call_monitor_timeout,
#: 10 s, each), past the ~15-21 s without a broker of the longest outage
#: here and the second the services take to reconnect; three attempts
#: would span only ~10 s. The short delay keeps the test short.
RETRIES = {'host_attempts': 5, 'host_retry_delay': 2}


@dataclasses.dataclass
class World:
    broker: PrivateBroker
    cluster: Cluster
    aggregate: str
    conductors: list[Service]

    def describe(self) -> str:
        return self.cluster.describe() + '\n' + self.broker.describe()


@pytest.fixture(scope='module')
def world(private_broker: PrivateBroker,
          tmp_path_factory: pytest.TempPathFactory,
          db_url: str) -> Iterator[World]:
    # NOTE: a transport of its own, not rpc's cached ones: cleaned up
    # here, leaving the session's client on the shared broker alone.
    transport = messaging.get_rpc_transport(
        CONF, url=private_broker.url,
        allowed_remote_exmods=rpc.ALLOWED_EXMODS)
    cluster = Cluster(str(tmp_path_factory.mktemp('broker-restart')),
                      private_broker.url, db_url,
                      ConductorAPI(transport, timeout=15))
    try:
        shorts = ['cmp%02d' % i for i in range(1, HOSTS + 1)]
        aggregate = cluster.add_aggregate('compute', shorts)
        began = time.monotonic()
        services = [cluster.agent(short, download_rate_limit=RATE_KIB)
                    .start() for short in shorts]
        conductors = [cluster.make_conductor(**RETRIES)]
        conductors += [add_conductor(cluster, 'conductor%d' % n)
                       for n in range(2, CONDUCTORS + 1)]
        for service in [*services, *(c.start() for c in conductors)]:
            service.wait_ready(timeout=120)
        print('%d agents and %d conductors started in %.1fs'
              % (HOSTS, CONDUCTORS, time.monotonic() - began))
        yield World(private_broker, cluster, aggregate, conductors)
    finally:
        cluster.kill_all()
        transport.cleanup()


def _job(world: World, job_id: str) -> objects.Job:
    return world.cluster.get_job(job_id)


def wait_for(world: World, job_id: str, done: Callable[[objects.Job], bool],
             timeout: float, what: str) -> objects.Job:
    """get_job until ``done``; a call that times out (the broker just came
    back) is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = _job(world, job_id)
        except messaging.MessagingTimeout:
            job = None
        if job is not None and done(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail('job %s: not %s after %.0fs: %s\n%s' % (
                job_id, what, timeout, job and job.counts,
                world.describe()))
        time.sleep(0.2)


def wait_listening(world: World, timeout: float) -> float:
    """Wait until every agent's and conductor's own queue has a consumer
    on the broker; seconds it took."""
    began = time.monotonic()
    queues = {'%s.%s' % (rpc.AGENT_TOPIC, a.host)
              for a in world.cluster.agents.values()}
    queues |= {'%s.%s' % (rpc.CONDUCTOR_TOPIC, c.sections['DEFAULT']['host'])
               for c in world.conductors}
    while True:
        consumers = world.broker.consumers()
        missing = sorted(q for q in queues if not consumers.get(q))
        if not missing:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            pytest.fail('no consumer on %s after %.0fs\n%s'
                        % (missing, timeout, world.describe()))
        time.sleep(0.5)


def finished(job: objects.Job) -> int:
    return sum(n for state, n in job.counts.items()
               if State(state).is_final)


def run_with_outage(world: World, name: str, outage: Callable[[], None],
                    breaks_calls: bool) -> objects.Job:
    """Start a job of every host, run ``outage`` once some hosts are done
    and others still to come; the job as it ended. ``breaks_calls``: the
    outage always breaks the calls in flight, so retries must show in the
    conductors' logs (otherwise there may be none to make)."""
    cluster = world.cluster
    image = cluster.make_image(name, blocks=BLOCKS)
    for service in cluster.services:
        assert service.running, service.describe()

    job = cluster.submit(world.aggregate, [image],
                         max_concurrent_hosts=LIMIT)
    job = wait_for(world, job.id, lambda j: finished(j) >= 3, 60,
                   'three hosts done')
    assert job.state is JobState.RUNNING, job.counts
    assert finished(job) < HOSTS - LIMIT, job.counts
    before = dict(job.counts)

    began = time.monotonic()
    outage()
    back = time.monotonic()
    job = wait_for(world, job.id, lambda j: j.state.is_final, 150,
                   'ended')
    ended = time.monotonic()

    results = job.results or []
    assert len(results) == HOSTS, job.counts
    assert job.state is JobState.DONE, job.counts
    assert {r.state for r in results} <= {State.CACHED, State.EXISTING}, \
        [(r.host, r.state.value, r.reason) for r in results
         if r.state not in (State.CACHED, State.EXISTING)]
    retried = sum(c.count(r'Job %s: host \S+ attempt \d+ of %d: .*; '
                          r'\d+ image\(s\) tried again'
                          % (job.id, RETRIES['host_attempts']))
                  for c in world.conductors)
    assert retried > 0 or not breaks_calls, world.describe()
    assert {r.host for r in results} == {
        a.host for a in cluster.agents.values()}
    # Every service's RPC server consumes from its queue again (the
    # broker lost them all: oslo.messaging's queues are not durable).
    listening = wait_listening(world, 60)

    # A rerun, on whichever conductor takes it, reaches every agent.
    again = wait_for(world, cluster.submit(world.aggregate, [image]).id,
                     lambda j: j.state.is_final, 60, 'ended')
    assert again.state is JobState.DONE, again.counts
    states = {r.host: r.state for r in again.results or []}
    assert len(states) == HOSTS, again.counts
    assert set(states.values()) <= {State.EXISTING, State.CACHED}, \
        again.counts
    for agent in cluster.agents.values():
        assert agent.temp_files() == [], agent.host
    print('%s: before %s; outage %.1fs; job ended %.1fs after the broker '
          'was back (%.1fs in all): %s after %d retries; every service '
          'listening %.1fs later; rerun %s in %.1fs'
          % (name, before, back - began, ended - back, job.seconds or 0.0,
             job.counts, retried, listening, again.counts,
             again.seconds or 0.0))
    return job


def test_stop_app_mid_job(world: World) -> None:
    """``rabbitmqctl stop_app`` for ~5 s, then ``start_app``."""
    def outage() -> None:
        world.broker.stop_app()
        time.sleep(5)
        world.broker.start_app()

    # NOTE: a stop_app may only delay the calls in flight (their replies
    # wait) and lose some pings, or none: retries are usual, not certain.
    run_with_outage(world, 'stop-app', outage, breaks_calls=False)


def test_broker_killed_mid_job(world: World) -> None:
    """SIGKILL of the broker's VM; the same node (ports, data) is started
    again 10 s later (~14 s without a broker in all)."""
    def outage() -> None:
        world.broker.kill9()
        time.sleep(10)
        print('broker restarted in %.1fs' % world.broker.start())

    # NOTE: the killed broker loses the reply queues of the calls in
    # flight: those hosts end their attempt "stopped responding".
    run_with_outage(world, 'kill-9', outage, breaks_calls=True)
