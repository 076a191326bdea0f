"""Takeover benchmark: three conductors, one dies at half a job.

Runs three ``precache-conductor`` processes over a private vhost of a
real RabbitMQ and a fresh MariaDB database, against H simulated agents
(bench/fanout.py's worker processes, each call sleeping ``t`` seconds),
with a short ``lease_time`` and ``takeover_interval``. It measures one
undisturbed job over all hosts, then ``--repeat`` times: a job whose
owner (``jobs.conductor`` in the store) gets a kill -9 once half of its
rows are final. It reports

* takeover seconds: the kill to the job's owner changing in the store;
* makespan / (undisturbed makespan + lease_time) of the disturbed jobs;
* hosts redone: cache_images calls an agent got again for an image it
  had answered before the kill (must be 0); hosts that were running
  under the dead owner are called again by design ("recalled").

Usage: ``python bench/takeover.py [--hosts 200] [--sleep 2]``. The last
line is ``takeover_s=<p50> disturbed_vs_ideal=<p50 ratio>
hosts_redone=<n>``. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fanout  # noqa: E402
from fanout import AGGREGATE, IMAGE_IDS, log  # noqa: E402

MARIADB_ADMIN_URL = os.environ.get(
    'PRECACHE_TEST_MARIADB_URL', 'mysql+pymysql://root@127.0.0.1:3306/mysql')
CONDUCTORS = ('bench-cond-a', 'bench-cond-b', 'bench-cond-c')


class TakeoverBench(fanout.Bench):
    """fanout's Bench with three conductors on a shared MariaDB store."""

    def __init__(self, args: argparse.Namespace) -> None:
        args.small_hosts, args.parallel = 0, [args.parallel_hosts]
        super().__init__(args)
        self.database = 'precache_bench_%s' % uuid.uuid4().hex[:8]
        self.db_url = MARIADB_ADMIN_URL.rsplit('/', 1)[0] + '/' \
            + self.database
        self.db_created = False
        self.calls_log = os.path.join(self.tmp, 'calls.log')
        self.agent_options = ['--calls-log', self.calls_log]
        self.conductors: dict[str, subprocess.Popen] = {}
        self.store: Any = None

    def write_files(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(MARIADB_ADMIN_URL)
        with engine.begin() as conn:
            conn.execute(sa.text('CREATE DATABASE %s' % self.database))
        engine.dispose()
        self.db_created = True
        super().write_files()
        with open(self.config) as stream:
            text = stream.read()
        text = text.replace(
            'connection = sqlite:///%s/precache.sqlite' % self.tmp,
            'connection = %s' % self.db_url)
        text = text.replace('[conductor]\n', (
            '[conductor]\nlease_time = %d\ntakeover_interval = %d\n'
            'report_interval = 1\nservice_down_time = %d\n'
            'graceful_shutdown_timeout = 10\n') % (
                self.args.lease_time, self.args.takeover_interval,
                self.args.lease_time + 2))
        with open(self.config, 'w') as stream:
            stream.write(text)
        subprocess.run([self._script('precache-manage'), '--config-file',
                        self.config, 'db', 'sync'], check=True,
                       capture_output=True)
        for name in CONDUCTORS:
            with open('%s.%s' % (self.config, name), 'w') as stream:
                stream.write('[DEFAULT]\nhost = %s\n' % name)
        from precache.db.api import JobStore

        self.store = JobStore(self.db_url)

    def start_conductors(self) -> None:
        for name in CONDUCTORS:
            proc = self.conductors.get(name)
            if proc is not None and proc.poll() is None:
                continue
            self.conductors[name] = subprocess.Popen(
                [self._script('precache-conductor'), '--config-file',
                 self.config, '--config-file',
                 '%s.%s' % (self.config, name), '--log-file',
                 os.path.join(self.tmp, '%s.log' % name)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=fanout._die_with_parent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(self._log_says(n, 'Conductor %s started' % n)
                   for n in CONDUCTORS):
                return
            time.sleep(0.5)
        raise RuntimeError('conductors not started (see %s)' % self.tmp)

    def _log_says(self, name: str, text: str) -> bool:
        path = os.path.join(self.tmp, '%s.log' % name)
        with open(path) if os.path.exists(path) else open(os.devnull) as s:
            return text in s.read()

    def stop_conductor(self) -> None:
        for proc in self.conductors.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.conductors.values():
            try:
                proc.wait(self.args.sleep + 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def calls(self, offset: int) -> collections.Counter[tuple[str, str]]:
        with open(self.calls_log) as stream:
            stream.seek(offset)
            return collections.Counter(
                tuple(line.split()) for line in stream)  # type: ignore

    def one_job(self, name: str, kill: bool) -> dict[str, Any]:
        args = self.args
        self.start_conductors()
        self.wait_for_heartbeats(args.hosts)
        offset = os.path.getsize(self.calls_log) \
            if os.path.exists(self.calls_log) else 0
        ctxt = {'request_id': 'req-bench-%s' % name}
        job = self.api.cache_images(
            ctxt, AGGREGATE % args.hosts, IMAGE_IDS[:args.images],
            {'max_concurrent_hosts': args.parallel_hosts})
        rows = args.hosts * args.images
        owner = killed_at = taken = None
        before: set[tuple[str, str]] = set()
        heir = None
        while True:
            current = self.store.get_job(job.id)
            final = {(r.host, r.image_id) for r in current.results or []
                     if r.state.is_final}
            if kill and killed_at is None and len(final) >= rows / 2:
                owner = self.store.runner_of(job.id)
                self.conductors[owner].send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                before = final
                log('  killed %s at %d/%d rows' % (owner, len(final), rows))
            if killed_at is not None and taken is None:
                now = self.store.runner_of(job.id)
                if now not in (owner, None):
                    taken, heir = time.monotonic() - killed_at, now
                    log('  %s took over after %.2f s' % (heir, taken))
            if current.state.is_final:
                break
            time.sleep(0.1)
        makespan = (current.finished_at - current.started_at).total_seconds()
        calls = self.calls(offset)
        repeated = {key for key, n in calls.items() if n > 1}
        redone = len(repeated & before)
        recalled = len(repeated - before)
        cached = sum(r.state.value == 'cached' for r in current.results)
        log('  %s: %s, %d/%d cached, makespan %.2f s, redone %d, '
            'recalled %d' % (name, current.state.value, cached, rows,
                             makespan, redone, recalled))
        return {'makespan': makespan, 'takeover': taken, 'heir': heir,
                'redone': redone, 'recalled': recalled,
                'state': current.state.value, 'cached': cached,
                'load': os.getloadavg()[0]}

    def cleanup(self, keep: bool) -> None:
        super().cleanup(keep)
        if self.db_created:
            import sqlalchemy as sa

            if self.store is not None:
                self.store.close()
            engine = sa.create_engine(MARIADB_ADMIN_URL)
            with engine.begin() as conn:
                conn.execute(sa.text('DROP DATABASE %s' % self.database))
            engine.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python bench/takeover.py',
        description='Kill -9 of a job\'s conductor at half the job.')
    parser.add_argument('--hosts', type=int, default=200)
    parser.add_argument('--parallel-hosts', type=int, default=20,
                        help='max_concurrent_hosts (20)')
    parser.add_argument('--sleep', type=float, default=2.0,
                        help='seconds each cache_images call sleeps (2)')
    parser.add_argument('--images', type=int, choices=(1, 2), default=1)
    parser.add_argument('--agent-procs', type=int, default=0)
    parser.add_argument('--lease-time', type=int, default=6)
    parser.add_argument('--takeover-interval', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--quiet-load', type=float, default=1.5)
    parser.add_argument('--keep', action='store_true')
    return parser


def main() -> int:
    args = build_parser().parse_args()
    signal.signal(signal.SIGTERM, fanout._interrupt)
    import logging

    logging.basicConfig(level=logging.ERROR)
    bench = TakeoverBench(args)
    base: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    failed = True
    try:
        fanout.wait_for_quiet(args.quiet_load)
        bench.start_rabbit()
        bench.check_broker(args.hosts + 32 * 6)
        bench.add_vhost()
        bench.write_files()
        bench.start_agents()
        bench.connect()
        from precache import service
        service.freeze_startup_objects()
        base = bench.one_job('undisturbed', kill=False)
        for n in range(args.repeat):
            runs.append(bench.one_job('kill-%d' % n, kill=True))
        failed = False
    except KeyboardInterrupt:
        log('Interrupted')
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup(keep=failed or args.keep)
    if failed or not runs:
        return 1
    ideal = base['makespan'] + args.lease_time
    print()
    print('undisturbed makespan %.2f s (load %.1f); ideal disturbed = '
          '%.2f s (+ lease_time %d s)' % (base['makespan'], base['load'],
                                          ideal, args.lease_time))
    for r in runs:
        print('kill: takeover %s s by %s, makespan %.2f s, ratio %.3f, '
              'redone %d, recalled %d, %s, load %.1f' % (
                  '-' if r['takeover'] is None else '%.2f' % r['takeover'],
                  r['heir'], r['makespan'], r['makespan'] / ideal,
                  r['redone'], r['recalled'], r['state'], r['load']))
    takeovers = [r['takeover'] for r in runs if r['takeover'] is not None]
    print('takeover p50 %.2f s, max %.2f s (bound lease_time + '
          'takeover_interval = %d s)' % (
              statistics.median(takeovers), max(takeovers),
              args.lease_time + args.takeover_interval))
    print('takeover_s=%.2f disturbed_vs_ideal=%.3f hosts_redone=%d' % (
        statistics.median(takeovers),
        statistics.median(r['makespan'] / ideal for r in runs),
        sum(r['redone'] for r in runs)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
