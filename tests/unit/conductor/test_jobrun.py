"""One job's run: what the fan-out and the recorder report to it, and how
it ends (expired, paused, cancelled, done)."""

from __future__ import annotations

import datetime
import threading
import time
import uuid

import pytest

from precache import objects, states
from precache.conductor import fanout, hostcall
from precache.conductor.jobrun import JobRun, Shared
from precache.conductor.recorder import Recorder

State = objects.HostImageState
JobState = objects.JobState
IMAGE = objects.ImageSpec(id='22222222-2222-4222-8222-222222222222', size=1)
HOSTS = [('j-h1', None), ('j-h2', 'cell1')]
T0 = datetime.datetime(2026, 3, 4, 5, 6, tzinfo=datetime.UTC)


class Notifier:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def job_started(self, job, aggregate, resumed):
        self.events.append(('started', job.id))

    def host_done(self, job_id, results):
        self.events += [('host', r.host) for r in results]

    def job_paused(self, job_id):
        self.events.append(('paused', job_id))

    def job_ended(self, job, seconds):
        self.events.append(('ended', job.state.value))


class Caller:
    """Every host answers ``cached`` at once."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def cache_images(self, job, images, host, cell, window):
        self.called.append(host)
        return hostcall.results_for(host, cell, images, State.CACHED, '')


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def parts(own_store):
    notifier, runs = Notifier(), {}
    recorder = Recorder(own_store, notifier, runs)
    shared = Shared(store=own_store, inventory=None, caller=Caller(),
                    limiter=fanout.Limiter(), recorder=recorder,
                    notifier=notifier, start_lock=threading.Lock(),
                    stopping=threading.Event(), clock=Clock())
    yield shared, runs
    recorder.stop()


def _run(shared, runs, options=None) -> JobRun:
    job = shared.store.create_job(str(uuid.uuid4()), 'agg', [IMAGE], HOSTS,
                                  options or {})
    assert shared.store.set_job_state(job.id, JobState.RUNNING)
    run = runs[job.id] = JobRun(shared, job.id, resumed=False)
    run.job = shared.store.get_job(job.id)
    run.images = [IMAGE]
    return run


def _rows(shared, run) -> dict[str, tuple[State, str | None]]:
    return {r.host: (r.state, r.reason)
            for r in shared.store.get_job(run.job_id).results}


def test_start_host_claims_calls_and_records(parts):
    shared, runs = parts
    run = _run(shared, runs)
    run.start_host('j-h1', None)
    shared.recorder.flush(run.job_id)
    assert shared.caller.called == ['j-h1']
    assert _rows(shared, run) == {'j-h1': (State.CACHED, ''),
                                  'j-h2': (State.PENDING, None)}


def test_start_host_while_cancelling_starts_nothing(parts):
    shared, runs = parts
    run = _run(shared, runs)
    run.cancelling = True
    run.start_host('j-h1', None)
    shared.recorder.flush(run.job_id)
    assert shared.caller.called == []
    assert _rows(shared, run)['j-h1'] == (State.PENDING, None)


def test_start_host_after_the_deadline_skips_it_unclaimed(parts):
    shared, runs = parts
    run = _run(shared, runs)
    run.window.deadline = T0
    run.start_host('j-h1', None)
    assert shared.caller.called == []
    assert _rows(shared, run)['j-h1'] == (State.SKIPPED,
                                         states.SkipReason.WINDOW_CLOSED)


def test_host_failed_records_an_internal_error(parts):
    shared, runs = parts
    run = _run(shared, runs)
    run.host_failed('j-h2', 'cell1', RuntimeError('boom'))
    shared.recorder.flush(run.job_id)
    assert _rows(shared, run)['j-h2'] == (State.ERROR,
                                         'internal error: boom')
    assert states.ErrorReason.of('internal error: boom') is \
        states.ErrorReason.INTERNAL


def test_a_claim_lost_to_a_cancel_stops_the_run(parts):
    """The recorder finds the run by its job id and tells it."""
    shared, runs = parts
    run = _run(shared, runs)
    shared.store.cancel_job(run.job_id, states.JobReason.CANCELLED.value)
    run.start_host('j-h1', None)
    shared.recorder.flush(run.job_id)
    assert run.stop.is_set() and run.cancelling
    assert run.cancel_requested()
    # NOTE: the call already made is recorded as it ended.
    assert _rows(shared, run) == {'j-h1': (State.CACHED, ''),
                                  'j-h2': (State.SKIPPED, 'cancelled')}


def test_cancel_requested_reads_the_typed_reason(parts):
    shared, runs = parts
    run = _run(shared, runs)
    assert not run.cancel_requested()
    shared.store.set_job_state(run.job_id, JobState.RUNNING,
                               reason='cancelled by requester')
    assert not run.cancel_requested()
    shared.store.set_job_state(run.job_id, JobState.RUNNING,
                               reason=states.JobReason.CANCELLED.value)
    assert run.cancel_requested()


def test_fan_out_and_end_finish_the_job_done(parts):
    shared, runs = parts
    run = _run(shared, runs)
    left = run.fan_out()
    run.end(left, time.monotonic())
    job = shared.store.get_job(run.job_id)
    assert left == [] and job.state is JobState.DONE and job.reason is None
    assert job.counts['cached'] == 2
    notifier = shared.notifier
    assert notifier.events[0] == ('started', run.job_id)
    assert notifier.events[-1] == ('ended', 'done')


def test_window_closed_expires_the_job(parts):
    shared, runs = parts
    run = _run(shared, runs, {'deadline': T0.isoformat()})
    left = run.fan_out()
    assert sorted(left) == ['j-h1', 'j-h2']
    run.end(left, time.monotonic())
    job = shared.store.get_job(run.job_id)
    assert job.state is JobState.EXPIRED
    assert job.reason == states.JobReason.WINDOW_CLOSED == 'window closed'
    assert {r.reason for r in job.results} == {'window closed'}


def test_conductor_stopping_pauses_the_job(parts):
    shared, runs = parts
    run = _run(shared, runs)
    shared.stopping.set()
    left = run.fan_out()
    assert sorted(left) == ['j-h1', 'j-h2']
    run.end(left, time.monotonic())
    job = shared.store.get_job(run.job_id)
    assert job.state is JobState.RUNNING
    assert job.counts['pending'] == 2
    assert shared.notifier.events[-1] == ('paused', run.job_id)


def test_a_cancelled_run_ends_cancelled(parts):
    shared, runs = parts
    run = _run(shared, runs)
    run.claim_lost('j-h1')
    assert run.stop.is_set() and run.cancelling
    shared.store.set_job_state(run.job_id, JobState.RUNNING,
                               reason=states.JobReason.CANCELLED.value)
    left = run.fan_out()
    run.end(left, time.monotonic())
    job = shared.store.get_job(run.job_id)
    assert job.state is JobState.CANCELLED
    assert job.reason == 'cancelled by request'
