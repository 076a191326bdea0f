"""When the conductor pings an agent, and when the agent drops a request.

Real agents of the session's ``cloud`` (in-process bus); only the agent
client is wrapped, to count the calls it makes. What the registry tells
the caller is tested in test_registry.py.
"""

from __future__ import annotations

import datetime
import uuid

import oslo_messaging as messaging
import pytest

from precache import objects, states
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
    assert agents.contexts[0].abandoned_after is not None


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


class AnswerAs(CountingAgentAPI):
    """The real client; the agent's ping answer claims another version."""

    def __init__(self, inner: AgentAPI, rpc_version: str) -> None:
        super().__init__(inner)
        self.rpc_version = rpc_version

    def ping(self, ctxt, host, **kwargs):
        return dict(super().ping(ctxt, host, **kwargs),
                    rpc_version=self.rpc_version)


DOWN_600S = AgentStatus(doubt='agent down', evidence='no heartbeat for 600s')


def test_host_in_doubt_that_answers_its_ping_is_called(cloud, agents):
    """A stale row (conductor just started) does not skip a live agent."""
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents, lambda host, cell: DOWN_600S)
    [result] = caller.cache_images(job, images, 'u-h1', 'cell1')
    assert result.state is State.CACHED, result.reason
    assert agents.pings == ['u-h1'] and agents.calls == ['u-h1']


def test_host_in_doubt_not_answering_is_skipped_with_both_reasons(
        cloud, agents, conf):
    conf.config(group='conductor', agent_ping_timeout=1)
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents, lambda host, cell: DOWN_600S)
    [result] = caller.cache_images(job, images, 'u-ghost', 'cell2')
    assert result.state is State.SKIPPED
    assert result.reason == ('agent down (no heartbeat for 600s, no answer '
                             'to ping within 1s)')
    assert agents.calls == []
    # The row shows the second its ping was waited for.
    assert 1 <= result.seconds < 5
    assert (result.finished_at - result.started_at).total_seconds() \
        == pytest.approx(result.seconds)


def test_the_ping_answer_not_the_row_tells_the_version(cloud):
    job, images = _job(cloud, cloud.add_image())
    too_old = AgentStatus(doubt='agent too old',
                          evidence='RPC version 0.9, needs 1.0')
    upgraded = CountingAgentAPI(AgentAPI(cloud.transport))
    caller = HostCaller(lambda cell: upgraded, lambda host, cell: too_old)
    [result] = caller.cache_images(job, images, 'u-h2', 'cell1')
    assert result.state is State.CACHED, result.reason

    still_old = AnswerAs(AgentAPI(cloud.transport), '0.9')
    caller = HostCaller(lambda cell: still_old, lambda host, cell: DOWN_600S)
    [result] = caller.cache_images(job, images, 'u-h3', 'cell2')
    assert result.state is State.SKIPPED
    assert result.reason == 'agent too old (RPC version 0.9, needs 1.0)'
    assert still_old.calls == []


def test_a_call_that_timed_out_shows_when_it_began(cloud, agents, conf):
    """The error row of a call nobody answered: its real start and length.

    (The agent is heard recently, so no ping; it never answers.)
    """
    conf.config(group='conductor', host_call_timeout=2)
    job, images = _job(cloud, cloud.add_image())
    caller = HostCaller(lambda cell: agents,
                        lambda host, cell: AgentStatus(heard_recently=True))
    before = objects.utcnow()
    [result] = caller.cache_images(job, images, 'u-ghost', 'cell2')
    assert result.state is State.ERROR
    assert result.reason == 'timed out after 2s (host_call_timeout)'
    assert before <= result.started_at < result.finished_at
    assert 1.9 <= result.seconds < 6
    assert (result.finished_at - result.started_at).total_seconds() \
        == pytest.approx(result.seconds)


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


def test_a_request_the_bus_could_not_deliver_is_unreachable(cloud, conf):
    """The broker away past the driver's reconnects: not attempted, and
    transient (a retry may reach the agent)."""
    class UndeliveredAPI(CountingAgentAPI):
        def cache_images(self, ctxt, host, images, **kwargs):
            raise messaging.MessageDeliveryFailure(
                'Unable to connect to AMQP server on 127.0.0.1:5672 after '
                '2 tries: [Errno 111] Connection refused')

    job, images = _job(cloud, cloud.add_image())
    agents = UndeliveredAPI(AgentAPI(cloud.transport))
    caller = HostCaller(lambda cell: agents,
                        lambda host, cell: AgentStatus(heard_recently=True))
    [result] = caller.cache_images(job, images, 'u-h1', 'cell1')
    assert result.state is State.SKIPPED
    assert result.reason == ('agent unreachable: Unable to connect to AMQP '
                             'server on 127.0.0.1:5672 after 2 tries: '
                             '[Errno 111] Connection refused')
    assert states.is_transient(result.state, result.reason)
