"""A host that fails for a transient reason is tried again within its job:
bounded by the attempt limit, the window, a cancel; never in a slot."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid

import pytest

from precache import exception, objects
from precache.conductor import fanout, hostcall, jobs
from precache.conductor.jobrun import JobRun, Shared
from precache.conductor.recorder import Recorder
from tests.unit.conductor.test_jobrun import Clock, Notifier

State = objects.HostImageState
JobState = objects.JobState
IMAGE = objects.ImageSpec(id='33333333-3333-4333-8333-333333333333', size=1)
OTHER = objects.ImageSpec(id='44444444-4444-4444-8444-444444444444', size=1)

NOT_RESPONDING = (State.SKIPPED,
                  'agent not responding (no answer to ping within 2s)')
STOPPED_RESPONDING = (State.ERROR, 'agent stopped responding after 4s '
                                   '(no heartbeat for 2s)')
CACHED = (State.CACHED, None)


class Script:
    """Answers each host's calls in turn from its script (the last answer
    repeats); an answer is one (state, reason) for every image, or a dict
    of them by image id. Records every call."""

    def __init__(self, **answers) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str], float]] = []
        self.lock = threading.Lock()
        self.after_call = None

    def cache_images(self, job, images, host, cell, window):
        with self.lock:
            n = sum(1 for c in self.calls if c[0] == host)
            self.calls.append((host, [i.id for i in images],
                               time.monotonic()))
        script = self.answers.get(host.replace('-', '_'), [CACHED])
        answer = script[min(n, len(script) - 1)]
        results = []
        for image in images:
            state, reason = (answer[image.id] if isinstance(answer, dict)
                             else answer)
            results += hostcall.results_for(host, cell, [image], state,
                                            reason)
        if self.after_call:
            self.after_call(host, n + 1)
        return results

    def hosts_called(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def world(own_store, conf):
    conf.config(group='conductor', host_attempts=3, host_retry_delay=0.1)
    notifier, runs = Notifier(), {}
    recorder = Recorder(own_store, notifier, runs)

    def make(script: Script, hosts=(('r-h1', None),), options=None,
             images=(IMAGE,)) -> JobRun:
        shared = Shared(store=own_store, inventory=None, caller=script,
                        limiter=fanout.Limiter(), recorder=recorder,
                        notifier=notifier, start_lock=threading.Lock(),
                        stopping=threading.Event(), clock=Clock())
        job = own_store.create_job(str(uuid.uuid4()), 'agg', list(images),
                                   list(hosts), options or {})
        assert own_store.set_job_state(job.id, JobState.RUNNING)
        run = runs[job.id] = JobRun(shared, job.id, resumed=False)
        return run

    yield make
    recorder.stop()


def _finish(run: JobRun) -> objects.Job:
    started = time.monotonic()
    left = run.fan_out()
    run.end(left, started)
    return run.shared.store.get_job(run.job_id)


def _rows(job: objects.Job) -> dict[tuple[str, str], tuple[State, str]]:
    return {(r.host, r.image_id): (r.state, r.reason) for r in job.results}


def _attempt_lines(caplog, host: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if 'host %s attempt' % host in r.getMessage()]


def test_a_host_that_answers_on_its_third_attempt_is_cached(world, caplog):
    caplog.set_level(logging.INFO)
    script = Script(r_h1=[NOT_RESPONDING, STOPPED_RESPONDING, CACHED])
    job = _finish(world(script))
    assert script.hosts_called() == ['r-h1'] * 3
    assert job.state is JobState.DONE
    assert _rows(job) == {('r-h1', IMAGE.id): CACHED}
    lines = _attempt_lines(caplog, 'r-h1')
    assert len(lines) == 3, lines
    assert all(line.startswith('Job %s: ' % job.id) for line in lines)
    assert 'attempt 1 of 3: skipped (agent not responding' in lines[0]
    assert 'attempt 2 of 3: error (agent stopped responding' in lines[1]
    assert 'tried again in' in lines[0] and 'tried again in' in lines[1]
    assert lines[2].endswith('attempt 3 of 3: cached; done')


def test_the_backoff_grows_with_jitter(world, conf):
    conf.config(group='conductor', host_retry_delay=0.2)
    script = Script(r_h1=[NOT_RESPONDING, NOT_RESPONDING, CACHED])
    _finish(world(script))
    first, second, third = (c[2] for c in script.calls)
    # 0.2 s plus up to 0.2 s, then 0.4 s plus up to 0.2 s (and the time
    # a busy machine takes to start the call).
    assert 0.2 <= second - first < 0.4 + 1
    assert 0.4 <= third - second < 0.6 + 1


def test_attempts_end_at_the_limit_and_the_row_says_how_many(world):
    script = Script(r_h1=[NOT_RESPONDING])
    job = _finish(world(script))
    assert script.hosts_called() == ['r-h1'] * 3
    assert _rows(job)[('r-h1', IMAGE.id)] == (
        State.SKIPPED, 'agent not responding (no answer to ping within '
                       '2s) after 3 attempts')


@pytest.mark.parametrize('asked,made', [(1, 1), (2, 2), (9, 3)])
def test_a_job_may_only_lower_the_attempts(world, asked, made):
    script = Script(r_h1=[STOPPED_RESPONDING])
    job = _finish(world(script, options={'host_attempts': asked}))
    assert len(script.calls) == made
    [(state, reason)] = _rows(job).values()
    assert state is State.ERROR
    assert reason.endswith(' after %d attempts' % made) == (made > 1)


@pytest.mark.parametrize('answer', [
    (State.ERROR, 'agent failed: CacheStoreError: no space left'),
    (State.ERROR, 'Image x failed verification: hash mismatch'),
    (State.UNSUPPORTED, 'file: not a raw image'),
    (State.SKIPPED, 'agent too old (RPC version 0.9, needs 1.0)'),
    (State.SKIPPED, 'agent stopped (at 2026-03-04T05:06:07+00:00)'),
])
def test_permanent_failures_are_not_retried(world, caplog, answer):
    caplog.set_level(logging.INFO)
    script = Script(r_h1=[answer, CACHED])
    job = _finish(world(script))
    assert script.hosts_called() == ['r-h1']
    assert _rows(job)[('r-h1', IMAGE.id)] == answer
    assert _attempt_lines(caplog, 'r-h1') == []


def test_only_the_images_that_failed_are_tried_again(world):
    mixed = {IMAGE.id: CACHED, OTHER.id: STOPPED_RESPONDING}
    script = Script(r_h1=[mixed, CACHED])
    job = _finish(world(script, images=(IMAGE, OTHER)))
    assert [c[1] for c in script.calls] == [[IMAGE.id, OTHER.id],
                                            [OTHER.id]]
    assert _rows(job) == {('r-h1', IMAGE.id): CACHED,
                          ('r-h1', OTHER.id): CACHED}


def test_a_permanent_and_a_transient_failure_on_one_host(world):
    bad = (State.ERROR, 'Image x failed verification: hash mismatch')
    script = Script(r_h1=[{IMAGE.id: bad, OTHER.id: NOT_RESPONDING}])
    job = _finish(world(script, images=(IMAGE, OTHER)))
    assert [c[1] for c in script.calls] == [[IMAGE.id, OTHER.id],
                                            [OTHER.id], [OTHER.id]]
    rows = _rows(job)
    assert rows[('r-h1', IMAGE.id)] == bad
    assert rows[('r-h1', OTHER.id)][1].endswith(' after 3 attempts')


def test_no_retry_that_would_start_after_the_deadline(world, conf,
                                                      caplog):
    caplog.set_level(logging.INFO)
    conf.config(group='conductor', host_retry_delay=2)
    run = world(Script(r_h1=[NOT_RESPONDING, CACHED]))
    # NOTE: the job's clock stands still: 1.5 s left, the wait is 2-4 s.
    run.window.deadline = run.shared.clock.now + datetime.timedelta(
        seconds=1.5)
    run.job = run.shared.store.get_job(run.job_id)
    run.images = [IMAGE]
    started = time.monotonic()
    assert run.start_host('r-h1', None) is None
    assert time.monotonic() - started < 1
    run.shared.recorder.flush(run.job_id)
    job = run.shared.store.get_job(run.job_id)
    assert _rows(job)[('r-h1', IMAGE.id)] == NOT_RESPONDING
    [line] = _attempt_lines(caplog, 'r-h1')
    assert line.endswith('no retry: the window closes in 2s')


def test_the_window_closing_during_the_wait_ends_the_host(world, conf,
                                                           caplog):
    conf.config(group='conductor', host_retry_delay=1)
    script = Script(r_h1=[NOT_RESPONDING, CACHED])
    now = objects.utcnow()
    run = world(script, options={
        'deadline': (now + datetime.timedelta(seconds=60)).isoformat()})
    clock = run.shared.clock
    clock.now = now

    def close_window(host, n):
        def close():
            clock.now += datetime.timedelta(hours=1)
        threading.Timer(0.1, close).start()
    script.after_call = close_window
    started = time.monotonic()
    job = _finish(run)
    assert time.monotonic() - started < 1
    assert script.hosts_called() == ['r-h1']
    assert _rows(job)[('r-h1', IMAGE.id)] == NOT_RESPONDING
    assert any('host r-h1 not tried again after 1 attempt(s): the window '
               'closed' in r.getMessage() for r in caplog.records)


def test_a_cancel_during_the_wait_ends_the_host(world, conf):
    conf.config(group='conductor', host_retry_delay=2)
    script = Script(r_h1=[NOT_RESPONDING, CACHED])
    run = world(script)
    script.after_call = lambda host, n: threading.Timer(
        0.1, run.stop_starting).start()
    started = time.monotonic()
    left = run.fan_out()
    assert time.monotonic() - started < 1.5
    assert left == [] and script.hosts_called() == ['r-h1']
    run.shared.recorder.flush(run.job_id)
    job = run.shared.store.get_job(run.job_id)
    assert _rows(job)[('r-h1', IMAGE.id)] == NOT_RESPONDING


def test_a_host_waiting_for_its_retry_holds_no_slot(world, conf):
    """With one slot, another host is called and done during the wait."""
    conf.config(group='conductor', max_concurrent_hosts=1,
                host_retry_delay=0.5)
    script = Script(r_h1=[NOT_RESPONDING, CACHED], r_h2=[CACHED])
    run = world(script, hosts=(('r-h1', 'c1'), ('r-h2', 'c1')))
    job = _finish(run)
    assert script.hosts_called() == ['r-h1', 'r-h2', 'r-h1']
    first, other, retry = (c[2] for c in script.calls)
    assert first < other < retry and retry - first >= 0.5
    assert _rows(job) == {('r-h1', IMAGE.id): CACHED,
                          ('r-h2', IMAGE.id): CACHED}
    assert run.shared.limiter.in_flight == 0


def test_what_raises_after_an_attempt_keeps_the_images_done(world):
    mixed = {IMAGE.id: CACHED, OTHER.id: NOT_RESPONDING}
    script = Script(r_h1=[mixed])

    def boom(host, n):
        if n == 2:
            raise RuntimeError('boom')
    script.after_call = boom
    job = _finish(world(script, images=(IMAGE, OTHER)))
    assert _rows(job) == {('r-h1', IMAGE.id): CACHED,
                          ('r-h1', OTHER.id): (State.ERROR,
                                               'internal error: boom')}


@pytest.mark.parametrize('value', [0, -1, True, '2', 1.5])
def test_bad_attempt_options(value):
    with pytest.raises(exception.InvalidOption) as info:
        jobs.validate_options({'host_attempts': value})
    assert info.value.kwargs['option'] == 'host_attempts'


def test_attempt_option_is_kept():
    assert jobs.validate_options({'host_attempts': 2}) == {
        'host_attempts': 2}


def test_the_fan_out_drops_retries_on_stop_never_leaves_them(conf):
    """A host waiting for its retry when the run stops is the work's to
    record (retry_dropped), not a host never started."""
    conf.config(group='conductor', max_concurrent_hosts=1)
    stop = threading.Event()
    dropped: list[str] = []

    class Work:
        def start_host(self, host, cell):
            if host == 'x':
                return fanout.Retry(time.monotonic() + 30)
            stop.set()
            return None

        def host_failed(self, host, cell, exc):  # pragma: no cover
            raise AssertionError(exc)

        def retry_dropped(self, host, cell):
            dropped.append(host)

    started = time.monotonic()
    left = fanout.run([('x', 'a'), ('y', 'a'), ('z', 'a')], Work(),
                      fanout.Limiter(), fanout.JobSlots(), stop)
    assert time.monotonic() - started < 5
    assert left == ['z'] and dropped == ['x']


def test_a_job_retries_a_host_without_agent_and_says_how_often(cloud,
                                                               conf):
    """Through the conductor: u-ghost has no agent, its pings go
    unanswered twice; the others are cached at their first attempt."""
    conf.config(group='conductor', agent_ping_timeout=1, host_attempts=2,
                host_retry_delay=0.1)
    image_id = cloud.add_image()
    job = cloud.wait(cloud.api.cache_images({}, 'partial', [image_id]).id)
    assert job.state is JobState.DONE
    rows = {r.host: r for r in job.results}
    assert rows['u-ghost'].state is State.SKIPPED
    assert rows['u-ghost'].reason == ('agent not responding (no answer to '
                                      'ping within 1s) after 2 attempts')
    assert rows['u-h1'].state is rows['u-h3'].state is State.CACHED
    assert rows['u-h1'].reason is None


def test_with_retries_off_a_failure_is_recorded_as_before(world, conf,
                                                          caplog):
    conf.config(group='conductor', host_attempts=1)
    script = Script(r_h1=[NOT_RESPONDING, CACHED])
    job = _finish(world(script))
    assert script.hosts_called() == ['r-h1']
    assert _rows(job)[('r-h1', IMAGE.id)] == NOT_RESPONDING
    assert _attempt_lines(caplog, 'r-h1') == []


def test_a_cancel_through_the_conductor_ends_a_host_waiting(cloud, conf,
                                                            caplog):
    """u-ghost waits 5-10 s for its second attempt; the cancel records
    its first at once and the job ends cancelled."""
    caplog.set_level(logging.INFO)
    conf.config(group='conductor', agent_ping_timeout=1, host_attempts=3,
                host_retry_delay=5)
    accepted = cloud.api.cache_images({}, 'partial', [cloud.add_image()])
    waiting = 'host u-ghost attempt 1 of 3'
    deadline = time.monotonic() + 10
    while not any(accepted.id in r.getMessage() and waiting in
                  r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, 'no first attempt seen'
        time.sleep(0.05)
    cancelled_at = time.monotonic()
    cloud.api.cancel_job({}, accepted.id)
    job = cloud.wait(accepted.id)
    assert time.monotonic() - cancelled_at < 3
    assert job.state is JobState.CANCELLED
    rows = {r.host: r for r in job.results}
    assert rows['u-ghost'].state is State.SKIPPED
    assert rows['u-ghost'].reason == ('agent not responding (no answer to '
                                      'ping within 1s)')
