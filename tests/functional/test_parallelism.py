"""The conductor's host limit, seen from the agents' own clocks."""

from __future__ import annotations

from precache import objects
from tests.functional.harness import Cluster

State = objects.HostImageState

HOSTS = 6
LIMIT = 2
#: 3 blocks of 64 KiB at 128 KiB/s: each host takes about 1.5 s.
RATE_KIB = 128
BLOCKS = 3


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end before a start)."""
    events = sorted([(start, 1) for start, _ in intervals]
                    + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_max_overlap() -> None:
    assert max_overlap([(0, 1), (1, 2), (2, 3)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 4), (3, 5)]) == 3
    assert max_overlap([]) == 0


def test_max_concurrent_hosts_holds(cluster: Cluster) -> None:
    """6 hosts, at most 2 at a time: never 3 at once, ~3 rounds long."""
    image = cluster.make_image('delta', blocks=BLOCKS)
    shorts = ['cmp%d' % i for i in range(1, HOSTS + 1)]
    aggregate = cluster.add_aggregate('compute', shorts)
    cluster.start({s: {'download_rate_limit': RATE_KIB} for s in shorts})

    job = cluster.submit(aggregate, [image], max_concurrent_hosts=LIMIT)
    assert job.options == {'max_concurrent_hosts': LIMIT}
    job = cluster.wait_job(job.id, timeout=60)
    assert job.state is objects.JobState.DONE
    results = job.results or []
    assert len(results) == HOSTS
    assert all(r.state is State.CACHED for r in results), results

    # NOTE: the agents' clocks: when each really worked on the image.
    intervals = [(r.started_at.timestamp(), r.finished_at.timestamp())
                 for r in results]
    assert max_overlap(intervals) == LIMIT, sorted(intervals)

    per_host = sum(end - start for start, end in intervals) / HOSTS
    expected = BLOCKS * 64 / RATE_KIB
    assert expected * 0.9 <= per_host <= expected * 1.5, per_host
    makespan = (job.finished_at - job.started_at).total_seconds()
    rounds = HOSTS / LIMIT
    print('makespan %.2fs = %.2f x per-host %.2fs'
          % (makespan, makespan / per_host, per_host))
    assert (rounds - 0.5) * per_host <= makespan \
        <= (rounds + 1.5) * per_host, (makespan, per_host)
