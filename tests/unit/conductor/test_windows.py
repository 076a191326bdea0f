"""Maintenance windows: parsing, option checks, and a job whose window
closes while it runs (an injected clock, real agents in process)."""

from __future__ import annotations

import datetime
import threading

import pytest

from precache import exception, objects
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor import jobs, windows
from precache.conductor.inventory import StaticInventory
from tests.unit.clock import Clock

State = objects.HostImageState
JobState = objects.JobState
UTC = datetime.UTC


@pytest.mark.parametrize('value,seconds', [
    (60, 60), ('90', 90), ('2h', 7200), ('90m', 5400), ('1h30m', 5400),
    ('45s', 45), (' 2H ', 7200),
])
def test_parse_duration(value, seconds):
    assert windows.parse_duration(value) == seconds


@pytest.mark.parametrize('value', [0, -5, '0m', 'h', '2d', '', True, 1.5,
                                   None, '1m2h'])
def test_parse_duration_refuses(value):
    with pytest.raises(ValueError):
        windows.parse_duration(value)


def test_parse_deadline_clock_time_is_the_next_one():
    tz = datetime.timezone(datetime.timedelta(hours=2))
    now = datetime.datetime(2026, 3, 1, 3, 30, tzinfo=tz)
    later = windows.parse_deadline('04:00', now)
    assert later == datetime.datetime(2026, 3, 1, 4, 0, tzinfo=tz)
    tomorrow = windows.parse_deadline('03:30', now)
    assert tomorrow == datetime.datetime(2026, 3, 2, 3, 30, tzinfo=tz)
    iso = windows.parse_deadline('2026-03-01T05:00:00+00:00', now)
    assert iso == datetime.datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
    assert windows.parse_deadline('2026-03-01T05:00').tzinfo is not None
    with pytest.raises(ValueError):
        windows.parse_deadline('25:00', now)


def test_window_becomes_an_absolute_deadline():
    before = objects.utcnow()
    options = jobs.validate_options({'window': '2h'})
    deadline = datetime.datetime.fromisoformat(options['deadline'])
    assert options['window'] == 7200
    assert before + datetime.timedelta(hours=2) <= deadline <= \
        objects.utcnow() + datetime.timedelta(hours=2)


def test_deadline_is_stored_in_utc():
    soon = (objects.utcnow() + datetime.timedelta(minutes=5)).astimezone(
        datetime.timezone(datetime.timedelta(hours=-5)))
    options = jobs.validate_options({'deadline': soon.isoformat()})
    assert options['deadline'].endswith('+00:00')
    assert datetime.datetime.fromisoformat(options['deadline']) == soon


@pytest.mark.parametrize('options,option,reason', [
    ({'window': 'soon'}, 'window', 'not a duration'),
    ({'window': 0}, 'window', 'at least 1 second'),
    ({'deadline': 'tomorrow'}, 'deadline', 'Invalid isoformat'),
    ({'deadline': 5}, 'deadline', 'ISO 8601'),
    ({'deadline': '2001-01-01T00:00:00+00:00'}, 'deadline',
     'has already passed'),
    ({'window': 60, 'deadline': '2999-01-01T00:00:00+00:00'}, 'window',
     'not both'),
    ({'hosts': []}, 'hosts', 'non-empty list'),
    ({'hosts': 'u-h1'}, 'hosts', 'non-empty list'),
    ({'hosts': ['u-h1', 'u-h1']}, 'hosts', 'listed twice'),
    ({'dedupe': 'yes'}, 'dedupe', 'true or false'),
    ({'source': ''}, 'source', '1-64'),
    ({'source': 'x' * 65}, 'source', '1-64'),
    ({'source': 'a\nb'}, 'source', '1-64'),
])
def test_bad_window_and_consumer_options(options, option, reason):
    with pytest.raises(exception.InvalidOption) as info:
        jobs.validate_options(options)
    assert info.value.kwargs['option'] == option
    assert reason in info.value.message
    assert info.value.code == 400


def test_call_timeout_is_bounded_by_deadline_and_grace(conf):
    conf.config(group='conductor', window_grace=30)
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    window = windows.Window(now + datetime.timedelta(seconds=100),
                            lambda: now)
    assert window.call_timeout(1800) == (130, True)
    assert window.call_timeout(60) == (60, False)
    assert not window.closed()
    assert windows.Window(None).call_timeout(1800) == (1800, False)
    closed = windows.Window(now - datetime.timedelta(seconds=100),
                            lambda: now)
    assert closed.closed()
    assert closed.call_timeout(1800) == (1, True)


# -- a job whose window closes while it runs ---------------------------------

def _runner(cloud, store, agents, clock) -> jobs.JobRunner:
    return jobs.JobRunner(store, StaticInventory(cloud.inventory),
                          LocalImageService(cloud.catalog), agents,
                          'u-windows', clock=clock)


def test_window_closing_mid_job_skips_the_rest(cloud, own_store):
    """One host at a time; the clock passes the deadline while the first
    host works: the others never start, the job is expired."""
    clock = Clock()
    called: list[str] = []

    class SlowAgentAPI(AgentAPI):
        def cache_images(self, ctxt, host, *args, **kwargs):
            called.append(host)
            try:
                return super().cache_images(ctxt, host, *args, **kwargs)
            finally:
                clock.now += datetime.timedelta(hours=2)

    agent_api = SlowAgentAPI(cloud.transport)

    def agents(cell):
        return agent_api

    runner = _runner(cloud, own_store, agents, clock)
    try:
        accepted = runner.create('all', [cloud.add_image()],
                                 {'window': '1h', 'max_concurrent_hosts': 1})
        job = cloud.wait(accepted.id, store=own_store)
    finally:
        runner.stop()
    assert len(called) == 1
    assert job.state is JobState.EXPIRED
    assert job.reason == 'window closed'
    states = {r.host: (r.state, r.reason) for r in job.results}
    first = [h for h, (s, _) in states.items() if s is State.CACHED]
    assert first == called
    assert sorted(v for h, v in states.items() if h not in first) == [
        (State.SKIPPED, 'window closed')] * 2


def test_job_accepted_then_resumed_after_its_deadline(cloud, own_store):
    """A conductor down when the window closed: at its start the job
    ends expired, every host skipped."""
    clock = Clock()
    images = LocalImageService(cloud.catalog).validate([cloud.add_image()])
    accepted = own_store.create_job(
        'job-late', 'all', images, [('u-h1', 'cell1'), ('u-h3', 'cell2')],
        jobs.validate_options({'window': 60}), conductor='u-windows')
    own_store.set_job_state(accepted.id, JobState.RUNNING)
    own_store.set_host_state(accepted.id, 'u-h3', State.RUNNING)
    clock.now += datetime.timedelta(minutes=5)
    later = _runner(cloud, own_store, lambda cell: AgentAPI(
        cloud.transport), clock)
    try:
        assert later.recover() == [accepted.id]
        job = cloud.wait(accepted.id, store=own_store)
    finally:
        later.stop()
    assert job.state is JobState.EXPIRED
    assert {(r.state, r.reason) for r in job.results} == {
        (State.SKIPPED, 'window closed')}


def test_host_in_flight_is_abandoned_after_grace(cloud, own_store, conf):
    """The call's timeout ends at deadline + grace: a host still working
    then is recorded as abandoned, not waited for."""
    conf.config(group='conductor', window_grace=0)
    conf.config(group='agent', download_rate_limit=64)  # KiB/s
    clock = Clock()
    image_id = cloud.add_image(data=b'\x01' * (320 * 1024))
    entered = threading.Event()

    def agents(cell):
        entered.set()
        return AgentAPI(cloud.transport)

    runner = _runner(cloud, own_store, agents, clock)
    try:
        accepted = runner.create('one', [image_id], {'window': 2})
        job = cloud.wait(accepted.id, store=own_store, timeout=30)
    finally:
        runner.stop()
    assert entered.is_set()
    [row] = job.results
    assert row.state is State.ERROR
    assert row.reason == 'window closed, abandoned after grace'
    # Nothing was skipped: the only host had started.
    assert job.state is JobState.DONE
