"""When the conductor pings an agent, and when the agent drops a request.

Real agents of the session's ``cloud`` (in-process bus); only the agent
client is wrapped, to count the calls it makes. What the registry tells
the caller is tested in test_registry.py.
"""

from __future__ import annotations

import datetime
import uuid

import pytest

from precache import objects
from precache.agent.rpcapi import AgentAPI
from precache.conductor.hostcall import HostCaller
from precache.conductor.registry import AgentStatus

State = objects.HostImageState


class CountingAgentAPI:
    """The real client, counting pings and calls per host."""

    def __init__(self, inner: AgentAPI) -> None:
        self.inner = inner
        self.pings: list[str] = []
        self.calls: list[str] = []
        self.contexts: list[dict] = []

    def ping(self, ctxt, host, **kwargs):
        self.pings.append(host)
        return self.inner.ping(ctxt, host, **kwargs)

    def cache_images(self, ctxt, host, images, **kwargs):
        self.calls.append(host)
        self.contexts.append(ctxt)
        return self.inner.cache_images(ctxt, host, images, **kwargs)


@pytest.fixture
def agents(cloud):
    return CountingAgentAPI(AgentAPI(cloud.transport))


def _job(cloud, image_id: str) -> tuple[objects.Job, list[objects.ImageSpec]]:
    images = cloud.conductor.runner.image_service.validate([image_id])
    job = objects.Job(id=str(uuid.uuid4()), aggregate='all',
                      image_ids=[image_id], state=objects.JobState.RUNNING)
    return job, images


def test_agent_heard_recently_gets_no_ping(cloud, agents):
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents,
                        lambda host, cell: AgentStatus(heard_recently=True))
    results = caller.cache_images(job, images, 'u-h1', 'cell1')
    assert [r.state for r in results] == [State.CACHED]
    assert agents.pings == [] and agents.calls == ['u-h1']
    # The agent learns when the conductor stops waiting for this call.
    assert 'abandoned_after' in agents.contexts[0]


def test_agent_not_heard_recently_is_pinged_first(cloud, agents):
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents,
                        lambda host, cell: AgentStatus())
    results = caller.cache_images(job, images, 'u-h2', 'cell1')
    assert [r.state for r in results] == [State.CACHED]
    assert agents.pings == ['u-h2'] and agents.calls == ['u-h2']


def test_always_ping_agents(cloud, agents, conf):
    conf.config(group='conductor', always_ping_agents=True)
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents,
                        lambda host, cell: AgentStatus(heard_recently=True))
    caller.cache_images(job, images, 'u-h3', 'cell2')
    assert agents.pings == ['u-h3']


def test_skip_reason_means_no_call_at_all(cloud, agents):
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents, lambda host, cell: AgentStatus(
        skip_reason='agent down (no heartbeat for 99s, agent_down_time 60s)'))
    [result] = caller.cache_images(job, images, 'u-h1', 'cell1')
    assert result.state is State.SKIPPED
    assert result.reason.startswith('agent down')
    assert agents.pings == [] and agents.calls == []


def test_unknown_agent_not_answering_its_ping_is_skipped(cloud, agents,
                                                         conf):
    conf.config(group='conductor', agent_ping_timeout=1)
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents, None)
    [result] = caller.cache_images(job, images, 'u-ghost', 'cell2')
    assert result.state is State.SKIPPED
    assert 'no answer to ping within 1s' in result.reason
    assert agents.calls == []


def test_agent_drops_a_request_the_conductor_gave_up_on(cloud, conf):
    conf.config(group='agent', clock_skew_allowance=5)
    image_id = cloud.add_image()
    [spec] = cloud.conductor.runner.image_service.validate([image_id])
    agents = AgentAPI(cloud.transport)
    long_ago = (objects.utcnow() - datetime.timedelta(seconds=30)).isoformat()
    [stale] = agents.cache_images({'abandoned_after': long_ago}, 'u-h1',
                                  [spec], timeout=10,
                                  call_monitor_timeout=5)
    assert stale.state is State.SKIPPED
    assert stale.reason == 'request expired in the agent queue'
    assert not cloud.stores['u-h1'].is_resident(spec)
    # Within the allowance for clock skew, the work is done.
    recent = (objects.utcnow() - datetime.timedelta(seconds=2)).isoformat()
    [done] = agents.cache_images({'abandoned_after': recent}, 'u-h1',
                                 [spec], timeout=10, call_monitor_timeout=5)
    assert done.state is State.CACHED
