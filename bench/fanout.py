"""Fan-out benchmark: the real conductor against H simulated agents.

Runs ``precache-conductor`` (the console script, in its own process) over
a private vhost of a real RabbitMQ, against H simulated agents: a few
worker processes of this script, each hosting ~100-250 oslo.messaging RPC
servers (topic ``precache-agent``, one per host name) whose
``cache_images`` sleeps a fixed ``t`` seconds. For each run it reports

* makespan / (ceil(H / P) x t), where makespan is the job's
  finished_at - started_at and P its max_concurrent_hosts: 1.00 is a
  perfect fan-out, the excess is per-host overhead (job store,
  scheduling, a ping for agents the registry has not heard from lately)
  and idle slots; the simulated agents heartbeat like real ones, and one
  more run pings every agent (``always_ping_agents``) for comparison;
* the conductor's CPU time per host during the job (utime + stime);
* the conductor's peak RSS (VmHWM), once at a small H and once at the
  large H, to show how it grows with H;
* for reference, the same calls made straight from P threads of the
  bench, with no conductor and no job store ("bus only"): the best ratio
  the bus, the agents and this machine allow.

Usage: ``python bench/fanout.py [--hosts 500] [--sleep 2]`` (``--help``
for the rest). It starts what it needs (RabbitMQ if it is down, a vhost,
the agents, one conductor per run) and stops it after, also on Ctrl-C or
failure; on failure it keeps its folder of logs. The last line is
``makespan_ratio=<x> conductor_cpu_ms_per_host=<y> conductor_rss_mb=<z>``
with, for the large-H runs, the worse of the per-P median ratios (the
largest P runs ``--repeat`` times), their median CPU per host and their
peak RSS. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures
from typing import Any

RABBIT_HOST = '127.0.0.1'
RABBIT_PORT = 5672
RABBIT_USER = 'guest'
RABBIT_PASSWORD = 'guest'  # noqa: S105 - the broker's default account

AGGREGATE = 'bench-%d'
HOST = 'bench-h%04d'
CONDUCTOR_HOST = 'bench-conductor'
IMAGE_IDS = ['5c6a2a67-0000-4000-8000-%012d' % i for i in range(1, 3)]
POLL_INTERVAL = 0.5  # as `precache-manage cache --wait`
HEARTBEAT_INTERVAL = 20  # as [registry] heartbeat_interval by default
CLK_TCK = os.sysconf('SC_CLK_TCK')
_PR_SET_PDEATHSIG = 1


# -- small helpers ----------------------------------------------------------

def wait_for_quiet(threshold: float, limit: float = 180.0) -> None:
    """Wait until the 1-min load average is at most ``threshold``."""
    if threshold <= 0:
        return
    start = time.monotonic()
    load = os.getloadavg()[0]
    if load <= threshold:
        return
    log('Load average %.1f: waiting for at most %.1f (up to %.0f s)'
        % (load, threshold, limit))
    while load > threshold and time.monotonic() - start < limit:
        time.sleep(5)
        load = os.getloadavg()[0]
    log('Load average %.1f after %.0f s' % (load, time.monotonic() - start))


def _die_with_parent() -> None:
    """In a child: get SIGTERM when the bench dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open('/proc/%d/stat' % pid) as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine since boot."""
    with open('/proc/stat') as stream:
        fields = [int(v) for v in stream.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # without guest time, already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set size so far, in MiB."""
    with open('/proc/%d/status' % pid) as stream:
        for line in stream:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return 0.0


def log(message: str) -> None:
    print('[%s] %s' % (time.strftime('%H:%M:%S'), message), flush=True)


# -- simulated agents (the worker processes) --------------------------------

def agents_main(argv: list[str]) -> None:
    """``fanout.py _agents ...``: host some agents until stdin closes."""
    parser = argparse.ArgumentParser(prog='fanout.py _agents')
    parser.add_argument('--config-file', required=True)
    parser.add_argument('--sleep', type=float, required=True)
    parser.add_argument('--calls-log', default=None,
                        help='append "host image" per cache_images call')
    parser.add_argument('hosts', nargs='+')
    args = parser.parse_args(argv)

    import logging

    import oslo_messaging as messaging

    from precache import objects, rpc, service, version
    from precache.agent.heartbeat import RegistryAPI
    from precache.conf import CONF

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    service.register_library_opts(CONF)
    CONF(['--config-file', args.config_file], project='precache',
         default_config_files=[])
    # NOTE: futurist starts one more worker thread per message until the
    # pool is full (64), and each idle worker wakes every second. A real
    # agent has one server per process; 125 here would grow to 8,000
    # threads, busy waking up. A simulated host gets one call at a time.
    CONF.set_override('executor_thread_pool_size', 2)

    # NOTE: for bench/takeover.py: who was called for what, to count
    # the calls repeated after a takeover.
    calls = open(args.calls_log, 'a') if args.calls_log else None
    calls_lock = threading.Lock()

    class SimulatedAgent:
        """The RPC surface of precache.agent.manager.AgentManager."""

        target = messaging.Target(version='1.0')

        def __init__(self, host: str) -> None:
            self.host = host

        def ping(self, ctxt: dict[str, Any]) -> dict[str, Any]:
            return {'host': self.host, 'cell': None,
                    'version': version.version_string, 'rpc_version': '1.0',
                    'backends': ['file'],
                    'store': {'kind': 'file', 'path': '/nonexistent',
                              'free_bytes': None}}

        def cache_images(self, ctxt: dict[str, Any],
                         images: list[dict[str, Any]]
                         ) -> list[dict[str, Any]]:
            started = objects.utcnow()
            if calls is not None:
                with calls_lock:
                    calls.write(''.join('%s %s\n' % (self.host, image['id'])
                                        for image in images))
                    calls.flush()
            time.sleep(args.sleep)
            finished = objects.utcnow()
            return [objects.HostImageResult(
                host=self.host, image_id=image['id'],
                state=objects.HostImageState.CACHED,
                method=objects.Method.FILE, bytes=image.get('size') or 0,
                seconds=(finished - started).total_seconds(),
                started_at=started, finished_at=finished).to_dict()
                for image in images]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # EOF: the bench is done (or gone)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    transport = rpc.get_transport(CONF)
    servers = [rpc.get_server(transport, rpc.AGENT_TOPIC, host,
                              [SimulatedAgent(host)])
               for host in args.hosts]
    with futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda server: server.start(), servers))
    service.freeze_startup_objects()  # NOTE: as precache-agent does

    def heartbeat() -> None:
        # NOTE: as real agents do (precache.agent.heartbeat), spread over
        # the interval; the conductor pings only agents it has not heard.
        registry = RegistryAPI(transport)
        pause = 0.8 * CONF.registry.heartbeat_interval / len(args.hosts)
        while not stop.is_set():
            for host in args.hosts:
                registry.heartbeat({}, {
                    'host': host, 'version': version.version_string,
                    'rpc_version': '1.0', 'backends': ['file'],
                    'stores': [{'kind': 'file'}]})
                if stop.wait(pause):
                    return

    threading.Thread(target=heartbeat, daemon=True).start()
    print('ready %d' % len(servers), flush=True)
    stop.wait()
    # NOTE: all at once: stop() itself blocks until the server's polling
    # thread notices, up to 5 s (oslo.messaging's longest poll), so a
    # loop of stop() calls takes minutes for a hundred servers.
    with futures.ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(lambda server: server.stop(), servers))
        list(pool.map(lambda server: server.wait(), servers))
    rpc.cleanup()


# -- the bench (the main process) -------------------------------------------

def rabbitmqctl(*args: str, check: bool = True,
                timeout: float = 60) -> str:
    done = subprocess.run(['rabbitmqctl', *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode:
        raise RuntimeError('rabbitmqctl %s: %s' % (
            ' '.join(args), (done.stderr or done.stdout).strip()))
    return done.stdout


def rabbit_listening() -> bool:
    with contextlib.suppress(OSError), \
            socket.create_connection((RABBIT_HOST, RABBIT_PORT), 2):
        return True
    return False


def _raise_nofile() -> None:
    # NOTE: started detached as root, RabbitMQ inherits a 1024-file limit
    # (832 connections); every simulated agent holds one connection.
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))


class Bench:
    """Everything the bench starts, so that :meth:`cleanup` can stop it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='precache-bench-')
        self.vhost = 'precache-bench-%s' % uuid.uuid4().hex[:8]
        self.started_rabbit = False
        self.vhost_added = False
        self.agents: list[subprocess.Popen] = []
        self.conductor: subprocess.Popen | None = None
        self.broker_pid: int | None = None
        self.config = os.path.join(self.tmp, 'precache.conf')
        self.transport: Any = None
        self.api: Any = None
        self.agent_options: list[str] = []

    # -- set-up ------------------------------------------------------------

    def start_rabbit(self) -> None:
        if rabbit_listening():
            return
        log('RabbitMQ is not running: starting it')
        subprocess.run(['rabbitmq-server', '-detached'], check=True,
                       preexec_fn=_raise_nofile)
        self.started_rabbit = True
        rabbitmqctl('await_startup', '--timeout', '90', timeout=120)

    def check_broker(self, connections: int) -> None:
        status = json.loads(rabbitmqctl('status', '--formatter', 'json'))
        self.broker_pid = status.get('pid')
        limit = status.get('file_descriptors', {}).get('sockets_limit')
        used = status.get('file_descriptors', {}).get('sockets_used', 0)
        if limit and used + connections > limit:
            raise RuntimeError(
                'RabbitMQ allows %d connections (%d in use); this bench '
                'needs about %d. Restart it with a higher file limit '
                '(ulimit -n 65536; rabbitmq-server -detached) or use fewer '
                '--hosts.' % (limit, used, connections))

    def add_vhost(self) -> None:
        rabbitmqctl('add_vhost', self.vhost)
        self.vhost_added = True
        rabbitmqctl('set_permissions', '-p', self.vhost, RABBIT_USER,
                    '.*', '.*', '.*')

    def write_files(self) -> None:
        args = self.args
        images = [{'id': image_id, 'name': 'bench-%d' % n,
                   'status': 'active', 'size': 1 << 20,
                   'disk_format': 'raw', 'locations': []}
                  for n, image_id in enumerate(IMAGE_IDS[:args.images])]
        with open(os.path.join(self.tmp, 'catalog.json'), 'w') as stream:
            json.dump(images, stream)
        sizes = sorted({args.small_hosts, args.hosts} - {0})
        with open(os.path.join(self.tmp, 'inventory.yaml'), 'w') as stream:
            stream.write('aggregates:\n')
            for n, size in enumerate(sizes, 1):
                stream.write('  - id: %d\n    name: %s\n    hosts: [%s]\n'
                             % (n, AGGREGATE % size, ', '.join(
                                 HOST % i for i in range(size))))
        url = 'rabbit://%s:%s@%s:%d/%s' % (
            RABBIT_USER, RABBIT_PASSWORD, RABBIT_HOST, RABBIT_PORT,
            self.vhost)
        with open(self.config, 'w') as stream:
            stream.write(
                '[DEFAULT]\n'
                'transport_url = %(url)s\n'
                'host = %(conductor)s\n'
                'state_path = %(tmp)s/state\n'
                'use_stderr = false\n'
                '[conductor]\n'
                'max_concurrent_hosts = %(max)d\n'
                '[registry]\n'
                'heartbeat_interval = %(beat)d\n'
                'agent_down_time = %(down)d\n'
                '[inventory]\n'
                'static_file = %(tmp)s/inventory.yaml\n'
                '[image_service]\n'
                'local_catalog = %(tmp)s/catalog.json\n'
                '[database]\n'
                'connection = sqlite:///%(tmp)s/precache.sqlite\n'
                % {'url': url, 'conductor': CONDUCTOR_HOST, 'tmp': self.tmp,
                   'max': max(args.parallel), 'beat': HEARTBEAT_INTERVAL,
                   'down': 3 * HEARTBEAT_INTERVAL})
        with open(self.config + '.ping', 'w') as stream:
            stream.write('[conductor]\nalways_ping_agents = true\n')
        subprocess.run([self._script('precache-manage'), '--config-file',
                        self.config, 'db', 'sync'], check=True,
                       capture_output=True)

    @staticmethod
    def _script(name: str) -> str:
        path = os.path.join(os.path.dirname(sys.executable), name)
        return path if os.path.exists(path) else name

    def start_agents(self) -> None:
        args = self.args
        procs = args.agent_procs or max(2, math.ceil(args.hosts / 150))
        hosts = [HOST % i for i in range(args.hosts)]
        log('Starting %d simulated agents in %d processes'
            % (len(hosts), procs))
        start = time.monotonic()
        for n in range(procs):
            # NOTE: round-robin, so that the small aggregate (the first
            # hosts) is spread over every process too.
            err = open(os.path.join(self.tmp, 'agents-%d.log' % n), 'w')
            self.agents.append(subprocess.Popen(
                [sys.executable, os.path.join(os.path.dirname(
                    os.path.abspath(__file__)), 'fanout.py'), '_agents',
                 '--config-file', self.config, '--sleep', str(args.sleep),
                 *self.agent_options, *hosts[n::procs]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True, start_new_session=True,
                preexec_fn=_die_with_parent))
            err.close()
        selector = selectors.DefaultSelector()
        for proc in self.agents:
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, proc)
        waiting = set(self.agents)
        deadline = time.monotonic() + 120
        while waiting:
            events = selector.select(max(0.0, deadline - time.monotonic()))
            if not events:
                raise RuntimeError('agents not ready after 120 s (see %s)'
                                   % self.tmp)
            for key, _ in events:
                line = key.data.stdout.readline()
                if not line.startswith('ready'):
                    raise RuntimeError('an agent process failed (see %s)'
                                       % self.tmp)
                selector.unregister(key.fileobj)
                waiting.discard(key.data)
        selector.close()
        log('Agents ready in %.1f s' % (time.monotonic() - start))

    def connect(self) -> None:
        from precache import rpc, service
        from precache.conductor.rpcapi import ConductorAPI
        from precache.conf import CONF

        service.register_library_opts(CONF)
        CONF(['--config-file', self.config], project='precache',
             default_config_files=[])
        self.transport = rpc.get_transport(CONF)
        self.api = ConductorAPI(self.transport, timeout=30)

    # -- one run -----------------------------------------------------------

    def start_conductor(self, name: str,
                        always_ping: bool = False) -> subprocess.Popen:
        log_file = os.path.join(self.tmp, 'conductor-%s.log' % name)
        extra = ['--config-file', self.config + '.ping'] if always_ping \
            else []
        self.conductor = subprocess.Popen(
            [self._script('precache-conductor'), '--config-file',
             self.config, *extra, '--log-file', log_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent)
        import oslo_messaging as messaging

        from precache import exception
        from precache.conductor.rpcapi import ConductorAPI

        # NOTE: the cheapest call with a known answer: JobNotFound.
        probe = ConductorAPI(self.transport, timeout=2)
        deadline = time.monotonic() + 60
        while True:
            if self.conductor.poll() is not None:
                raise RuntimeError('the conductor exited with %s (see %s)'
                                   % (self.conductor.returncode, log_file))
            try:
                probe.get_job({}, str(uuid.uuid4()), with_results=False)
            except exception.JobNotFound:
                return self.conductor
            except messaging.MessagingTimeout:
                if time.monotonic() > deadline:
                    raise

    def wait_for_heartbeats(self, hosts: int) -> None:
        """Until the registry has heard every host within an interval."""
        deadline = time.monotonic() + 3 * HEARTBEAT_INTERVAL
        while True:
            heard = sum(1 for agent in self.api.list_agents({})
                        if agent['state'] == 'up'
                        and agent['silence'] <= HEARTBEAT_INTERVAL)
            if heard >= hosts or time.monotonic() > deadline:
                log('  registry: %d of %d agents heard in the last %d s'
                    % (heard, hosts, HEARTBEAT_INTERVAL))
                return
            time.sleep(1)

    def _profile(self, pid: int, name: str) -> subprocess.Popen | None:
        """py-spy on the conductor, every thread, waiting ones too."""
        if not self.args.profile:
            return None
        out = os.path.join(self.tmp, 'profile-%s.txt' % name)
        proc = subprocess.Popen(
            [self._script('py-spy'), 'record', '--pid', str(pid), '--idle',
             '--threads', '--nonblocking', '--rate', '20', '--format',
             'raw', '--output', out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent)
        time.sleep(1)  # NOTE: py-spy needs a moment to attach
        return proc

    def stop_conductor(self) -> None:
        proc, self.conductor = self.conductor, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.args.sleep + 20)
        except subprocess.TimeoutExpired:
            log('The conductor did not stop in time: killing it')
            proc.kill()
            proc.wait()

    def _cpu(self, conductor: int | None) -> dict[str, float]:
        """CPU-seconds so far of each party, and of the machine."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_cpu()
        return {'conductor': cpu_seconds(conductor) if conductor else 0.0,
                'agents': sum(cpu_seconds(p.pid) for p in self.agents),
                'broker': cpu_seconds(self.broker_pid)
                if self.broker_pid else 0.0,
                'bench': usage.ru_utime + usage.ru_stime,
                'busy': busy, 'total': total}

    def _figures(self, hosts: int, parallel: int, span: tuple[Any, Any],
                 wall: float, results: list[Any],
                 cpu: dict[str, float]) -> dict[str, Any]:
        from precache import objects

        sleep = self.args.sleep
        waves = math.ceil(hosts / parallel)
        makespan = (span[1] - span[0]).total_seconds()
        starts = sorted(r.started_at for r in results if r.started_at)
        ends = [r.finished_at for r in results if r.finished_at]
        # NOTE: ramp = until the P-th host is inside cache_images; tail =
        # from the last agent's answer to the job's end.
        ramp = (starts[min(parallel, len(starts)) - 1] - span[0]
                ).total_seconds() if starts else float('nan')
        tail = (span[1] - max(ends)).total_seconds() if ends \
            else float('nan')
        # NOTE: Σ time inside cache_images over the slot-time there was:
        # how much of the P slots the agents were actually busy.
        inside = sum((r.finished_at - r.started_at).total_seconds()
                     for r in results[::self.args.images]
                     if r.started_at and r.finished_at)
        ours = sum(cpu[k] for k in ('conductor', 'agents', 'broker',
                                    'bench'))
        return {'hosts': hosts, 'parallel': parallel,
                'ideal': waves * sleep, 'makespan': makespan, 'wall': wall,
                'ratio': makespan / (waves * sleep),
                'overhead_ms': 1000 * (makespan / waves - sleep),
                'ramp': ramp, 'tail': tail,
                'busy': inside / (min(parallel, hosts) * makespan),
                'cached': sum(r.state is objects.HostImageState.CACHED
                              for r in results),
                'rows': len(results),
                'cpu_s': cpu['conductor'],
                'cpu_ms_per_host': 1000 * cpu['conductor'] / hosts,
                'agents_cpu_s': cpu['agents'], 'broker_cpu_s': cpu['broker'],
                'others_cores': max(0.0, cpu['busy'] - ours) / wall,
                'load': os.getloadavg()[0]}

    def run(self, hosts: int, parallel: int,
            always_ping: bool = False) -> dict[str, Any]:
        """One job through the real conductor."""
        args = self.args
        name = '%d-%d%s' % (hosts, parallel, '-ping' if always_ping else '')
        pid = self.start_conductor(name, always_ping).pid
        self.wait_for_heartbeats(args.hosts)
        ctxt = {'request_id': 'req-bench-%s' % name}
        profiler = self._profile(pid, name)
        before = self._cpu(pid)
        submitted = time.monotonic()
        job = self.api.cache_images(
            ctxt, AGGREGATE % hosts, IMAGE_IDS[:args.images],
            {'max_concurrent_hosts': parallel})
        while not job.state.is_final:
            time.sleep(POLL_INTERVAL)
            job = self.api.get_job(ctxt, job.id, with_results=False)
        wall = time.monotonic() - submitted
        after = self._cpu(pid)
        rss = peak_rss_mb(pid)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        job = self.api.get_job(ctxt, job.id, with_results=True)
        self.stop_conductor()
        figures = self._figures(
            hosts, parallel, (job.started_at, job.finished_at), wall,
            job.results or [], {k: after[k] - before[k] for k in after})
        figures.update(kind='conductor+ping' if always_ping else 'conductor',
                       state=job.state.value, rss_mb=rss)
        return figures

    def run_floor(self, hosts: int, parallel: int) -> dict[str, Any]:
        """The same calls without the conductor: what the bus allows.

        P threads of this process call each host's cache_images, as the
        conductor does for agents it has heard from, with no job store.
        """
        from precache import objects, rpc
        from precache.agent.rpcapi import AgentAPI
        from precache.conf import CONF

        agents = AgentAPI(self.transport)
        images = [objects.ImageSpec(id=i)
                  for i in IMAGE_IDS[:self.args.images]]
        ctxt = rpc.request_context(request_id='req-bench-floor')

        def one(host: str) -> list[objects.HostImageResult]:
            return agents.cache_images(
                ctxt, host, images, timeout=CONF.conductor.host_call_timeout,
                call_monitor_timeout=CONF.conductor.call_monitor_timeout)

        before = self._cpu(None)
        start, started = time.monotonic(), objects.utcnow()
        with futures.ThreadPoolExecutor(parallel) as pool:
            results = [r for rows in pool.map(
                one, [HOST % i for i in range(hosts)]) for r in rows]
        wall, finished = time.monotonic() - start, objects.utcnow()
        after = self._cpu(None)
        figures = self._figures(hosts, parallel, (started, finished), wall,
                                results,
                                {k: after[k] - before[k] for k in after})
        figures.update(kind='bus only', state='done', rss_mb=float('nan'),
                       cpu_s=float('nan'), cpu_ms_per_host=float('nan'))
        return figures

    # -- tear-down ---------------------------------------------------------

    def cleanup(self, keep: bool) -> None:
        def stop_agent(proc: subprocess.Popen) -> None:
            with contextlib.suppress(OSError, AttributeError):
                proc.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        start = time.monotonic()
        # NOTE: the conductor first: it lets its calls in flight finish
        # (at most t), which they cannot once their agents are gone.
        self.stop_conductor()
        if self.agents:
            with futures.ThreadPoolExecutor(len(self.agents)) as pool:
                list(pool.map(stop_agent, self.agents))
        log('Processes stopped in %.1f s' % (time.monotonic() - start))
        if self.transport is not None:
            from precache import rpc

            rpc.cleanup()
        if self.vhost_added:
            rabbitmqctl('delete_vhost', self.vhost, check=False)
            log('Vhost %s deleted' % self.vhost)
        if self.started_rabbit:
            log('Stopping the RabbitMQ this bench started')
            rabbitmqctl('stop', check=False)
        if keep:
            log('Logs kept in %s' % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _fmt(value: float, spec: str) -> str:
    return '-' if value != value else spec % value  # NaN: not measured


def print_table(results: list[dict[str, Any]], sleep: float) -> None:
    if not results:
        return
    header = ('run', 'hosts', 'P', 'ideal s', 'makespan s', 'wall s',
              'ratio', 'ovh ms', 'ramp s', 'tail s', 'busy', 'cond CPU s',
              'ms/host',
              'RSS MiB', 'agents CPU s', 'broker CPU s', 'others', 'load')
    rows = [(r['kind'], str(r['hosts']), str(r['parallel']),
             '%.1f' % r['ideal'], '%.2f' % r['makespan'],
             '%.2f' % r['wall'], '%.3f' % r['ratio'],
             '%.0f' % r['overhead_ms'], _fmt(r['ramp'], '%.2f'),
             _fmt(r['tail'], '%.2f'), '%.1f%%' % (100 * r['busy']),
             _fmt(r['cpu_s'], '%.2f'), _fmt(r['cpu_ms_per_host'], '%.2f'),
             _fmt(r['rss_mb'], '%.1f'), '%.1f' % r['agents_cpu_s'],
             '%.1f' % r['broker_cpu_s'], '%.2f' % r['others_cores'],
             '%.1f' % r['load'])
            for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows))
              for i, h in enumerate(header)]
    print()
    print('  '.join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print('  '.join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print('t = %g s per cache_images call; ideal = ceil(hosts/P) x t; '
          'ratio = makespan / ideal' % sleep)
    print('  (conductor: the job record\'s finished_at - started_at, '
          'agents heard')
    print('  recently get no ping; conductor+ping: with always_ping_agents; '
          'bus only:')
    print('  P threads of the bench calling cache_images per host, no '
          'conductor, no job store);')
    print('ovh = makespan / ceil(hosts/P) - t, per wave; ramp = start '
          'to the P-th host inside')
    print('  cache_images; tail = last answer to the end; busy = time '
          'inside cache_images')
    print('  / (min(P, hosts) x makespan); wall = submit to done as the '
          'poller saw it;')
    print('CPU is the conductor\'s during the job; RSS its peak (VmHWM) '
          'over its life;')
    print('others = cores used by processes outside this bench during the '
          'run;')
    print('load = 1-min load average at the end of the run (2 cores).')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python bench/fanout.py',
        description='Fan-out of the real conductor to simulated agents '
                    'over RabbitMQ.')
    parser.add_argument('--hosts', type=int, default=500,
                        help='simulated hosts of the large runs (500)')
    parser.add_argument('--small-hosts', type=int, default=100,
                        help='hosts of the run that shows how RSS grows '
                             'with H (100; 0 to skip)')
    parser.add_argument('--parallel', type=lambda v: [
        int(p) for p in v.split(',')], default=[16, 64],
        help='max_concurrent_hosts values, comma-separated (16,64)')
    parser.add_argument('--sleep', type=float, default=2.0,
                        help='seconds each cache_images call sleeps (2)')
    parser.add_argument('--images', type=int, choices=(1, 2), default=1,
                        help='images per job (1)')
    parser.add_argument('--agent-procs', type=int, default=0,
                        help='agent processes (default: one per 150 hosts, '
                             'at least 2)')
    parser.add_argument('--no-floor', action='store_true',
                        help='skip the bus-only run (no conductor) that '
                             'shows what the bus alone allows')
    parser.add_argument('--repeat', type=int, default=3,
                        help='runs of the largest P at the large H; the '
                             'last line reports the median (3)')
    parser.add_argument('--no-ping-run', action='store_true',
                        help='skip the run with always_ping_agents (a ping '
                             'before every call, for comparison)')
    parser.add_argument('--profile', action='store_true',
                        help='record the conductor with py-spy (raw, '
                             'collapsed stacks) during each job; implies '
                             '--keep')
    parser.add_argument('--quiet-load', type=float, default=1.5,
                        help='before starting, wait (up to 3 min) until '
                             'the 1-min load average is at most this: a '
                             'previous bench stopping its agents loads the '
                             'machine for a minute or two (1.5; 0 to not '
                             'wait)')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary folder (logs, job store)')
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if sys.argv[1:2] == ['_agents']:
        agents_main(sys.argv[2:])
        return 0
    args = build_parser().parse_args()
    args.keep = args.keep or args.profile
    if args.small_hosts >= args.hosts:
        args.small_hosts = 0
    # NOTE: the largest P is the hard case and the noisiest: run it
    # --repeat times, interleaved with the others, and report the median.
    top = max(args.parallel)
    plan = [('conductor', args.hosts, p)
            for p in sorted(args.parallel, reverse=True)]
    for _ in range(args.repeat - 1):
        plan.append(('conductor', args.hosts, top))
    if args.small_hosts:
        plan.insert(0, ('conductor', args.small_hosts, max(args.parallel)))
    if not args.no_ping_run:
        plan.append(('conductor+ping', args.hosts, max(args.parallel)))
    if not args.no_floor:
        plan.append(('bus only', args.hosts, max(args.parallel)))
    signal.signal(signal.SIGTERM, _interrupt)
    import logging

    # NOTE: the bus-only run makes 64 calls at once from this process;
    # oslo.messaging warns about its many reply queues.
    logging.basicConfig(level=logging.ERROR)
    bench = Bench(args)
    results: list[dict[str, Any]] = []
    failed = True
    started = time.monotonic()
    try:
        wait_for_quiet(args.quiet_load)
        bench.start_rabbit()
        procs = args.agent_procs or max(2, math.ceil(args.hosts / 150))
        bench.check_broker(args.hosts + 32 * (procs + 2))
        bench.add_vhost()
        bench.write_files()
        bench.start_agents()
        bench.connect()
        # NOTE: the bus-only run calls from this process, as a started
        # conductor would.
        from precache import service
        service.freeze_startup_objects()
        for kind, hosts, parallel in plan:
            log('Run: %s, %d hosts, P=%d, t=%gs (ideal %.0f s)' % (
                kind, hosts, parallel, args.sleep,
                math.ceil(hosts / parallel) * args.sleep))
            if kind == 'bus only':
                result = bench.run_floor(hosts, parallel)
            else:
                result = bench.run(hosts, parallel,
                                   always_ping=kind == 'conductor+ping')
            results.append(result)
            log('  %s, %d/%d rows cached, makespan %.2f s, ratio %.3f' % (
                result['state'], result['cached'], result['rows'],
                result['makespan'], result['ratio']))
        failed = False
    except KeyboardInterrupt:
        log('Interrupted')
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log('Cleaning up')
        bench.cleanup(keep=failed or args.keep)
    print_table(results, args.sleep)
    log('Total run time %.0f s' % (time.monotonic() - started))
    if failed:
        return 1
    large = [r for r in results
             if r['kind'] == 'conductor' and r['hosts'] == args.hosts]
    small = [r for r in results
             if r['kind'] == 'conductor' and r['hosts'] != args.hosts]
    floor = [r for r in results if r['kind'] == 'bus only']
    for r in small:
        print('Conductor peak RSS: %.1f MiB at %d hosts, %.1f MiB at %d '
              '(%+.1f MiB)' % (r['rss_mb'], r['hosts'], large[0]['rss_mb'],
                               args.hosts,
                               large[0]['rss_mb'] - r['rss_mb']))
    for r in floor:
        print('Bus only (no conductor) at P=%d: ratio %.3f'
              % (r['parallel'], r['ratio']))
    for r in results:
        if r['kind'] == 'conductor+ping':
            print('With a ping before every call at P=%d: ratio %.3f'
                  % (r['parallel'], r['ratio']))
    medians = {}
    for parallel in sorted({r['parallel'] for r in large}):
        ratios = sorted(r['ratio'] for r in large
                        if r['parallel'] == parallel)
        medians[parallel] = statistics.median(ratios)
        print('Conductor at P=%d: median ratio %.3f over %d run(s) '
              '(%.3f-%.3f)' % (parallel, medians[parallel], len(ratios),
                               ratios[0], ratios[-1]))
    print('makespan_ratio=%.3f conductor_cpu_ms_per_host=%.2f '
          'conductor_rss_mb=%.1f' % (
              max(medians.values()),
              statistics.median(r['cpu_ms_per_host'] for r in large),
              max(r['rss_mb'] for r in large)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
