"""The recorder writes claims and results in batches, then notifies."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from precache import exception, objects
from precache.conductor import recorder as recorder_mod
from precache.conductor.recorder import Recorder

State = objects.HostImageState
IMAGE = objects.ImageSpec(id='11111111-1111-4111-8111-111111111111', size=1)
HOSTS = [('r-h%d' % i, None) for i in range(6)]


class Notifier:
    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []

    def host_done(self, job_id, results):
        self.done += [(job_id, r.host) for r in results]


class Run:
    """A job's run as the recorder sees it: it hears of lost claims."""

    def __init__(self, job_id: str, lost: list) -> None:
        self.job_id, self.lost = job_id, lost

    def claim_lost(self, host: str) -> None:
        self.lost.append((self.job_id, host))


class NoLoss:
    """Every job is running, and none may lose a claim."""

    def get(self, job_id):
        return self

    def claim_lost(self, host):  # pragma: no cover - must not be called
        raise AssertionError('lost claim %s' % host)


_no_loss = NoLoss()


def _job(store) -> str:
    return store.create_job(str(uuid.uuid4()), 'agg', [IMAGE], HOSTS,
                            {}).id


def _cached(host: str) -> list[objects.HostImageResult]:
    now = objects.utcnow()
    return [objects.HostImageResult(host, IMAGE.id, State.CACHED, bytes=1,
                                    started_at=now, finished_at=now)]


class SlowStore:
    """The real store, each write held until the test lets it go."""

    def __init__(self, store) -> None:
        self.store = store
        self.gate = threading.Event()
        self.writes: list[int] = []

    def record_progress(self, claims, results, leases=None):
        self.gate.wait(10)
        self.writes.append(len(claims) + len(results))
        return self.store.record_progress(claims, results, leases)


def test_results_queued_meanwhile_share_one_write(own_store):
    slow, notifier = SlowStore(own_store), Notifier()
    recorder = Recorder(slow, notifier, _no_loss)
    try:
        job_a, job_b = _job(own_store), _job(own_store)
        recorder.put(job_a, _cached('r-h0'))
        # NOTE: the writer holds the first; the others queue behind it.
        for host, _ in HOSTS[1:]:
            recorder.put(job_a, _cached(host))
        recorder.put(job_b, _cached('r-h0'))
        slow.gate.set()
        recorder.flush(job_a)
        recorder.flush(job_b)
    finally:
        recorder.stop()
    assert sum(slow.writes) == 7 and len(slow.writes) <= 2
    assert own_store.get_job(job_a).counts['cached'] == 6
    assert own_store.get_job(job_b).counts['cached'] == 1
    assert sorted(notifier.done) == sorted(
        [(job_a, h) for h, _ in HOSTS] + [(job_b, 'r-h0')])


def test_claims_before_results_in_one_write(own_store):
    slow, lost = SlowStore(own_store), []
    runs: dict[str, Run] = {}
    recorder = Recorder(slow, Notifier(), runs)
    try:
        job, cancelled = _job(own_store), _job(own_store)
        runs.update({job: Run(job, lost), cancelled: Run(cancelled, lost)})
        own_store.cancel_job(cancelled, 'cancelled by request')
        recorder.claim(job, 'r-h0')
        recorder.put(job, _cached('r-h1'))
        recorder.claim(job, 'r-h1')
        recorder.claim(cancelled, 'r-h2')
        slow.gate.set()
        recorder.flush(job)
        recorder.sync(cancelled)
        states = {r.host: r.state
                  for r in own_store.get_job(job).results}
    finally:
        recorder.stop()
    assert states['r-h0'] is State.RUNNING
    assert states['r-h1'] is State.CACHED
    assert states['r-h2'] is State.PENDING
    assert lost == [(cancelled, 'r-h2')]


class CountingStore:
    """The real store, counting the writes that reach it."""

    def __init__(self, store) -> None:
        self.store = store
        self.writes = 0

    def record_progress(self, claims, results, leases=None):
        self.writes += 1
        return self.store.record_progress(claims, results, leases)


def test_flush_of_a_job_with_nothing_queued_returns(own_store):
    counting, notifier = CountingStore(own_store), Notifier()
    recorder = Recorder(counting, notifier, _no_loss)
    try:
        job = _job(own_store)
        started = time.monotonic()

        def flushes() -> None:
            recorder.flush(job)
            # Again: flush forgot the job, and nothing waits on it.
            recorder.flush(job)
            recorder.sync(job)

        flusher = threading.Thread(target=flushes, daemon=True)
        flusher.start()
        flusher.join(5)
        assert not flusher.is_alive(), 'flush waits for nothing queued'
        assert time.monotonic() - started < 1
    finally:
        recorder.stop()
    assert counting.writes == 0
    assert notifier.done == []
    written = own_store.get_job(job)
    assert written.state is objects.JobState.PENDING
    assert written.counts['pending'] == len(HOSTS)


def test_stop_writes_what_is_queued(own_store):
    slow = SlowStore(own_store)
    recorder = Recorder(slow, Notifier(), _no_loss)
    job = _job(own_store)
    for host, _ in HOSTS:
        recorder.put(job, _cached(host))
    slow.gate.set()
    recorder.stop()
    assert own_store.get_job(job).counts['cached'] == 6
    with pytest.raises(exception.PrecacheException, match='stopped'):
        recorder.put(job, _cached('r-h0'))


class FailingStore:
    """Fails every write of one job; writes the others."""

    def __init__(self, store, bad_job: str) -> None:
        self.store, self.bad_job = store, bad_job
        self.attempts = 0

    def record_progress(self, claims, results, leases=None):
        if any(job_id == self.bad_job for job_id, _ in claims + results):
            self.attempts += 1
            raise RuntimeError('disk I/O error')
        return self.store.record_progress(claims, results, leases)


def test_a_write_that_keeps_failing_fails_only_its_job(own_store,
                                                        monkeypatch):
    monkeypatch.setattr(recorder_mod, 'RETRY_DELAYS', (0.01, 0.01))
    bad, good = _job(own_store), _job(own_store)
    failing, notifier = FailingStore(own_store, bad), Notifier()
    recorder = Recorder(failing, notifier, _no_loss)
    try:
        with recorder._cond:  # noqa: SLF001 - both in one batch
            recorder._results.extend([(bad, _cached('r-h0')),
                                      (good, _cached('r-h1'))])
            recorder._pending.update([bad, good])
            recorder._cond.notify_all()
        with pytest.raises(exception.PrecacheException,
                           match='could not be recorded: disk I/O error'):
            recorder.flush(bad)
        recorder.flush(good)
    finally:
        recorder.stop()
    # NOTE: the batch, then the bad job alone three times.
    assert failing.attempts == 4
    assert own_store.get_job(good).counts['cached'] == 1
    assert own_store.get_job(bad).counts['pending'] == 6
    assert notifier.done == [(good, 'r-h1')]
