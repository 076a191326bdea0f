"""Limiter and run(): bounded, per-cell, fair fan-out with real threads."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from precache.conductor import fanout


class Recorder:
    """A ``work`` that records the order and overlap of its calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.started: list[str] = []
        self.active: collections.Counter = collections.Counter()
        self.max_active = 0
        self.max_per_cell: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, host: str, cell: str | None) -> None:
        with self._lock:
            self.started.append(host)
            self.active[cell] += 1
            self.max_active = max(self.max_active,
                                  sum(self.active.values()))
            self.max_per_cell[cell] = max(self.max_per_cell[cell],
                                          self.active[cell])
        time.sleep(self.delay)
        with self._lock:
            self.active[cell] -= 1


def _no_fail(host, cell, exc):  # pragma: no cover - must not be called
    raise AssertionError('work failed on %s: %r' % (host, exc))


class Work:
    """What run() reports to: ``start`` for each host, ``fail`` for what
    it raised (a job's run does both in the conductor)."""

    def __init__(self, start, fail=_no_fail) -> None:
        self.start_host, self.host_failed = start, fail


def _hosts(**cells: int) -> list[tuple[str, str | None]]:
    return [('%s-%d' % (cell, i), cell) for cell, count in cells.items()
            for i in range(count)]


def _blocks(limiter, job, cells, seconds=0.1) -> bool:
    """True when acquire() waits; it returns None once stop is set."""
    stop = threading.Event()

    def interrupt() -> None:
        stop.set()
        limiter.wake()

    timer = threading.Timer(seconds, interrupt)
    timer.start()
    try:
        return limiter.acquire(job, cells, stop) is None
    finally:
        timer.cancel()


# -- Limiter ---------------------------------------------------------------

def test_global_limit(conf):
    conf.config(group='conductor', max_concurrent_hosts=2)
    limiter, job = fanout.Limiter(), fanout.JobSlots()
    stop = threading.Event()
    assert limiter.acquire(job, ['a'], stop) == 'a'
    assert limiter.acquire(job, ['b'], stop) == 'b'
    assert limiter.in_flight == 2
    assert _blocks(limiter, job, ['a', 'b', 'c'])
    # Another job shares the same global slots.
    assert _blocks(limiter, fanout.JobSlots(), ['c'])
    limiter.release(job, 'a')
    assert limiter.acquire(fanout.JobSlots(), ['c'], stop) == 'c'


def test_per_cell_limit_picks_a_cell_with_room(conf):
    conf.config(group='conductor', max_concurrent_hosts=10,
                max_concurrent_hosts_per_cell=1)
    limiter, job = fanout.Limiter(), fanout.JobSlots()
    stop = threading.Event()
    assert limiter.acquire(job, ['a', 'b'], stop) == 'a'
    assert limiter.acquire(job, ['a', 'b'], stop) == 'b'
    assert _blocks(limiter, job, ['a', 'b'])
    # The per-cell limit is global too: another job cannot use cell a.
    assert _blocks(limiter, fanout.JobSlots(), ['a'])
    limiter.release(job, 'b')
    assert limiter.acquire(job, ['a', 'b'], stop) == 'b'


def test_job_may_lower_the_limits(conf):
    conf.config(group='conductor', max_concurrent_hosts=10)
    limiter = fanout.Limiter()
    stop = threading.Event()
    small = fanout.JobSlots(max_hosts=1)
    assert limiter.acquire(small, ['a'], stop) == 'a'
    assert _blocks(limiter, small, ['a', 'b'])
    # Other jobs are not held back by that job's own limit.
    assert limiter.acquire(fanout.JobSlots(), ['a'], stop) == 'a'

    per_cell = fanout.JobSlots(max_hosts_per_cell=1)
    assert limiter.acquire(per_cell, ['x'], stop) == 'x'
    assert limiter.acquire(per_cell, ['x', 'y'], stop) == 'y'
    assert _blocks(limiter, per_cell, ['x', 'y'])


def test_job_cannot_raise_the_limits(conf):
    conf.config(group='conductor', max_concurrent_hosts=2,
                max_concurrent_hosts_per_cell=1)
    limiter = fanout.Limiter()
    stop = threading.Event()
    greedy = fanout.JobSlots(max_hosts=50, max_hosts_per_cell=50)
    assert limiter.acquire(greedy, ['a'], stop) == 'a'
    assert _blocks(limiter, greedy, ['a'])
    assert limiter.acquire(greedy, ['b'], stop) == 'b'
    assert _blocks(limiter, greedy, ['c'])


def test_release_wakes_a_waiter(conf):
    conf.config(group='conductor', max_concurrent_hosts=1)
    limiter, job = fanout.Limiter(), fanout.JobSlots()
    stop = threading.Event()
    assert limiter.acquire(job, ['a'], stop) == 'a'
    got: list[str | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(limiter.acquire(job, ['a'], stop)))
    waiter.start()
    time.sleep(0.05)
    assert got == []
    limiter.release(job, 'a')
    waiter.join(5)
    assert got == ['a']


@pytest.mark.parametrize('configured,requested,expected', [
    (10, None, 10), (10, 3, 3), (10, 30, 10), (0, None, 0), (0, 4, 4)])
def test_cap(configured, requested, expected):
    assert fanout._cap(configured, requested) == expected


# -- run -------------------------------------------------------------------

def test_run_calls_every_host_once():
    work = Recorder()
    hosts = _hosts(a=3, b=2) + [('lonely', None)]
    left = fanout.run(hosts, Work(work), fanout.Limiter(),
                      fanout.JobSlots(), threading.Event())
    assert left == []
    assert sorted(work.started) == sorted(h for h, _ in hosts)


def test_run_never_exceeds_the_global_limit(conf):
    conf.config(group='conductor', max_concurrent_hosts=3)
    work = Recorder(delay=0.02)
    limiter = fanout.Limiter()
    assert fanout.run(_hosts(a=6, b=6), Work(work), limiter,
                      fanout.JobSlots(), threading.Event()) == []
    assert len(work.started) == 12
    assert work.max_active == 3
    assert limiter.in_flight == 0


def test_run_never_exceeds_the_per_cell_limit(conf):
    conf.config(group='conductor', max_concurrent_hosts=10,
                max_concurrent_hosts_per_cell=2)
    work = Recorder(delay=0.02)
    assert fanout.run(_hosts(a=5, b=5, c=1), Work(work),
                      fanout.Limiter(), fanout.JobSlots(),
                      threading.Event()) == []
    assert len(work.started) == 11
    assert max(work.max_per_cell.values()) <= 2
    assert work.max_active <= 5


def test_run_respects_the_job_limit(conf):
    conf.config(group='conductor', max_concurrent_hosts=10)
    work = Recorder(delay=0.02)
    fanout.run(_hosts(a=6), Work(work), fanout.Limiter(),
               fanout.JobSlots(max_hosts=2), threading.Event())
    assert len(work.started) == 6
    assert work.max_active <= 2


def test_two_jobs_share_the_global_limit(conf):
    conf.config(group='conductor', max_concurrent_hosts=2)
    limiter = fanout.Limiter()
    work = Recorder(delay=0.02)
    stop = threading.Event()
    threads = [threading.Thread(target=fanout.run, args=(
        _hosts(**{name: 4}), Work(work), limiter, fanout.JobSlots(),
        stop)) for name in ('x', 'y')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(work.started) == 8
    assert work.max_active <= 2


def test_run_is_round_robin_across_cells(conf):
    conf.config(group='conductor', max_concurrent_hosts=1)
    work = Recorder()
    hosts = [('a1', 'a'), ('a2', 'a'), ('a3', 'a'), ('a4', 'a'),
             ('b1', 'b'), ('c1', 'c'), ('c2', 'c'), ('n1', None)]
    fanout.run(hosts, Work(work), fanout.Limiter(), fanout.JobSlots(),
               threading.Event())
    assert work.started == ['a1', 'b1', 'c1', 'n1', 'a2', 'c2', 'a3', 'a4']


def test_run_records_exceptions_with_fail():
    failed: list[tuple[str, str | None, str]] = []

    def work(host, cell):
        if host in ('a-1', 'lonely'):
            raise RuntimeError('boom on %s' % host)

    def fail(host, cell, exc):
        failed.append((host, cell, str(exc)))

    limiter = fanout.Limiter()
    left = fanout.run(_hosts(a=3) + [('lonely', None)], Work(work, fail),
                      limiter, fanout.JobSlots(), threading.Event())
    assert left == []
    assert sorted(failed) == [('a-1', 'a', 'boom on a-1'),
                              ('lonely', None, 'boom on lonely')]
    assert limiter.in_flight == 0


def test_run_returns_unstarted_hosts_when_stopped(conf):
    conf.config(group='conductor', max_concurrent_hosts=1)
    stop = threading.Event()

    def work(host, cell):
        stop.set()

    hosts = _hosts(a=2, b=2)
    left = fanout.run(hosts, Work(work), fanout.Limiter(),
                      fanout.JobSlots(), stop)
    assert left == ['a-1', 'b-0', 'b-1']


def test_run_with_stop_already_set_starts_nothing():
    work = Recorder()
    stop = threading.Event()
    stop.set()
    hosts = _hosts(a=2, b=1)
    assert sorted(fanout.run(hosts, Work(work), fanout.Limiter(),
                             fanout.JobSlots(), stop)) == \
        sorted(h for h, _ in hosts)
    assert work.started == []


def test_run_without_hosts():
    assert fanout.run([], Work(_no_fail), fanout.Limiter(),
                      fanout.JobSlots(), threading.Event()) == []


def test_stop_ends_a_waiting_acquire(conf):
    conf.config(group='conductor', max_concurrent_hosts=1)
    limiter, job = fanout.Limiter(), fanout.JobSlots()
    stop = threading.Event()
    limiter.acquire(job, ['a'], stop)
    got: list[str | None] = ['unset']
    waiter = threading.Thread(
        target=lambda: got.__setitem__(0, limiter.acquire(job, ['a'],
                                                          stop)))
    waiter.start()
    time.sleep(0.05)
    stop.set()
    limiter.wake()
    waiter.join(5)
    assert got == [None]
