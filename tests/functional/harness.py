"""The functional tests' harness: services as processes, images, jobs.

A :class:`Cluster` is one test's world: a conductor and agents started
from the console scripts, each with its own config file and log file
under the test's tmp_path; the images it generated and their catalog; the
static inventory (both built with tests/fixtures.py). Host and aggregate
names carry a per-test tag, so no test ever receives a message meant for
another.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from precache import objects, rpc
from precache.conductor.rpcapi import ConductorAPI
from tests.fixtures import (
    Image,
    ImageCatalog,
    Inventory,
    KiB,
    conductor_sections,
    write_conf,
)

BIN = os.path.dirname(os.path.abspath(sys.executable))
HOST = '127.0.0.1'
PORT = 5672
TEMP_SUFFIX = '.precache.part'

#: Conductor settings every test runs with (a test may override them).
# NOTE: heartbeats come every half of call_monitor_timeout; 2 s (the
# minimum) is too tight on 2 busy cores, so only the test that kills an
# agent asks for it.
CONDUCTOR_DEFAULTS = {
    'call_monitor_timeout': 10,
    'agent_ping_timeout': 2,
    'host_call_timeout': 60,
    # NOTE: one attempt per host: tests assert what a failure records;
    # the tests of retries ask for more.
    'host_attempts': 1,
}
#: Agent settings every test runs with (a test may override them).
AGENT_DEFAULTS = {
    'chunk_size': 64,
    'download_rate_limit': 0,
}


def script(name: str) -> str:
    path = os.path.join(BIN, name)
    assert os.access(path, os.X_OK), '%s is not installed' % path
    return path


def rabbitmqctl(*args: str) -> str:
    try:
        done = subprocess.run(['rabbitmqctl', '-q', *args],
                              capture_output=True, text=True, timeout=60,
                              check=False)
    except FileNotFoundError:
        pytest.fail('rabbitmqctl not found: the functional tests need '
                    'RabbitMQ on %s:%d (see tools/test)' % (HOST, PORT))
    if done.returncode:
        pytest.fail('rabbitmqctl %s failed (is RabbitMQ running on '
                    '%s:%d?): %s' % (' '.join(args), HOST, PORT,
                                     (done.stderr or done.stdout).strip()))
    return done.stdout


@contextlib.contextmanager
def private_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost of its own (its transport URL), deleted after."""
    vhost = '%s-%s' % (prefix, uuid.uuid4().hex[:12])
    rabbitmqctl('add_vhost', vhost)
    try:
        rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*',
                    '.*')
        yield 'rabbit://guest:guest@%s:%d/%s' % (HOST, PORT, vhost)
    finally:
        rabbitmqctl('delete_vhost', vhost)


def cache_name(image_id: str) -> str:
    """Nova's base file name (the test's own copy, not the agent's)."""
    return hashlib.sha1(image_id.encode()).hexdigest()  # noqa: S324


def sha512_of(path: str) -> str:
    digest = hashlib.sha512()
    with open(path, 'rb') as stream:
        while chunk := stream.read(1024 * KiB):
            digest.update(chunk)
    return digest.hexdigest()


# -- services -------------------------------------------------------------


class Service:
    """One console-script process with its config file and log file."""

    def __init__(self, name: str, command: str, folder: str,
                 sections: dict[str, dict[str, Any]], ready: str) -> None:
        self.name = name
        self.command = command
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.log_file = os.path.join(folder, '%s.log' % name)
        self.out_file = os.path.join(folder, '%s.out' % name)
        sections.setdefault('DEFAULT', {})['log_file'] = self.log_file
        self.sections = sections
        self.config = write_conf(os.path.join(folder, '%s.conf' % name),
                                 sections)
        self.ready = ready
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def rewrite_config(self, group: str, **options: Any) -> None:
        """Change options for the next start."""
        self.sections.setdefault(group, {}).update(options)
        write_conf(self.config, self.sections)

    def start(self) -> Service:
        """Start the process (call from the main thread; see below)."""
        assert not self.running, '%s is already running' % self.name
        # NOTE: setpriv makes the kernel kill the service if pytest dies
        # without running its teardown (it then execs the script, so the
        # pid is the service's own). The parent-death signal fires when
        # the *thread* that forked exits, hence main thread only.
        argv = [script(self.command), '--config-file', self.config]
        if shutil.which('setpriv'):
            argv = ['setpriv', '--pdeathsig', 'KILL', '--', *argv]
        # NOTE: faulthandler: SIGABRT dumps every thread's stack into the
        # output file; see dump_and_kill().
        env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONFAULTHANDLER='1')
        with open(self.out_file, 'ab') as out:
            self.proc = subprocess.Popen(argv, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            with open(self.log_file, errors='replace') as stream:
                return stream.read()
        except FileNotFoundError:
            return ''

    def output(self) -> str:
        try:
            with open(self.out_file, errors='replace') as stream:
                return stream.read()
        except FileNotFoundError:
            return ''

    def describe(self, lines: int = 40) -> str:
        state = ('running' if self.running else 'exited with %s' % (
            self.proc.returncode if self.proc else 'never started'))
        tail = '\n'.join((self.log() + self.output()).splitlines()[-lines:])
        return '--- %s (%s) ---\n%s' % (self.name, state, tail)

    def count(self, pattern: str) -> int:
        """Lines of the log (all starts) matching a regular expression."""
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, count: int = 1,
                 timeout: float = 60.0) -> None:
        """Wait until ``pattern`` appears ``count`` times in the log."""
        deadline = time.monotonic() + timeout
        while self.count(pattern) < count:
            if not self.running:
                pytest.fail('%s exited before logging %r\n%s'
                            % (self.name, pattern, self.describe()))
            if time.monotonic() > deadline:
                pytest.fail('%s did not log %r within %.0fs\n%s'
                            % (self.name, pattern, timeout,
                               self.describe()))
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """The ready line of the latest start has been logged."""
        self.wait_log(self.ready, count=self.starts, timeout=timeout)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def dump_and_kill(self) -> None:
        """Stacks of a stuck service into its output, then SIGKILL."""
        if self.running:
            self.signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(2)
        self.kill()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)


class Agent(Service):
    def __init__(self, host: str, folder: str, transport_url: str,
                 options: dict[str, Any]) -> None:
        self.host = host
        self.instances_path = os.path.join(folder, 'instances')
        super().__init__(
            'agent-%s' % host, 'precache-agent', folder,
            {'DEFAULT': {'host': host, 'transport_url': transport_url,
                         'state_path': os.path.join(folder, 'state')},
             'agent': {'instances_path': self.instances_path,
                       **AGENT_DEFAULTS, **options}},
            ready=r'Agent %s started' % re.escape(host))

    @property
    def base_dir(self) -> str:
        return os.path.join(self.instances_path, '_base')

    def cache_path(self, image_id: str) -> str:
        return os.path.join(self.base_dir, cache_name(image_id))

    def temp_path(self, image_id: str) -> str:
        return self.cache_path(image_id) + TEMP_SUFFIX

    def files(self) -> list[str]:
        """Names in the cache folder (no lock files live there)."""
        try:
            return sorted(os.listdir(self.base_dir))
        except FileNotFoundError:
            return []

    def temp_files(self) -> list[str]:
        return [n for n in self.files() if n.endswith(TEMP_SUFFIX)]


# -- a test's cluster -----------------------------------------------------


class Cluster:
    """The services, images and inventory of one test."""

    def __init__(self, root: str, transport_url: str, db_url: str,
                 api: ConductorAPI) -> None:
        self.root = root
        self.transport_url = transport_url
        self.db_url = db_url
        self.api = api
        self.tag = uuid.uuid4().hex[:6]
        self.images = ImageCatalog(os.path.join(root, 'images'))
        self.image_dir = self.images.folder
        self.catalog_path = self.images.path
        #: the catalog's entries: edit, then :meth:`_write_catalog`
        self.catalog = self.images.entries
        self.inventory = Inventory(os.path.join(root, 'inventory.yaml'))
        self.inventory_path = self.inventory.path
        #: the inventory's aggregates: edit, then :meth:`_write_inventory`
        self.aggregates = self.inventory.aggregates
        self.services: list[Service] = []
        self.agents: dict[str, Agent] = {}
        self.conductor: Service | None = None
        self.client_config = write_conf(
            os.path.join(root, 'client.conf'),
            {'DEFAULT': {'transport_url': transport_url,
                         'log_file': os.path.join(root, 'client.log')}})
        self.log_errors_expected = False

    # -- names, images, inventory --

    def host(self, short: str) -> str:
        """The per-test name of a host."""
        return '%s-%s' % (self.tag, short)

    def make_image(self, name: str, blocks: int = 8, *,
                   block_size: int = 64 * KiB, data_share: float = 0.6,
                   **overrides: Any) -> Image:
        """Write an image file and list it in the catalog.

        ``blocks`` of ``block_size``, a ``data_share`` of them random, the
        others zero. ``overrides`` replace catalog fields (a wrong hash).
        """
        return self.images.add_sparse_image(
            name, blocks, block_size=block_size, data_share=data_share,
            **overrides)

    def _write_catalog(self) -> None:
        self.images.write()

    def add_aggregate(self, short: str, hosts: list[str]) -> str:
        """An aggregate of these hosts (short names); its full name."""
        name = '%s-%s' % (self.tag, short)
        self.aggregates.append({'id': 100 + len(self.aggregates),
                                'name': name, 'uuid': str(uuid.uuid4()),
                                'hosts': [self.host(h) for h in hosts]})
        self._write_inventory()
        return name

    def _write_inventory(self) -> None:
        self.inventory.write()

    # -- services --

    def agent(self, short: str, **options: Any) -> Agent:
        """Configure (not start) the agent of host ``short``."""
        host = self.host(short)
        agent = Agent(host, os.path.join(self.root, 'agents', short),
                      self.transport_url, options)
        self.agents[short] = agent
        self.services.append(agent)
        return agent

    def make_conductor(self, **options: Any) -> Service:
        self.conductor = Service(
            'conductor', 'precache-conductor',
            os.path.join(self.root, 'conductor'),
            {'DEFAULT': {'host': self.host('conductor'),
                         'transport_url': self.transport_url,
                         'state_path': os.path.join(self.root, 'state')},
             'conductor': {**CONDUCTOR_DEFAULTS, **options},
             **conductor_sections(self.inventory_path, self.catalog_path,
                                  self.db_url)},
            ready=r'Conductor %s started' % re.escape(
                self.host('conductor')))
        self.services.append(self.conductor)
        return self.conductor

    def start(self, agents: dict[str, dict[str, Any]] | list[str],
              conductor: dict[str, Any] | None = None) -> dict[str, Agent]:
        """Start a conductor and these agents together; wait for all."""
        if isinstance(agents, list):
            agents = {short: {} for short in agents}
        started = [self.agent(short, **options).start()
                   for short, options in agents.items()]
        started.append(self.make_conductor(**(conductor or {})).start())
        for service in started:
            service.wait_ready()
        return {short: self.agents[short] for short in agents}

    def stop_all(self, timeout: float = 10.0) -> list[str]:
        """SIGTERM every running service at once; the unclean exits.

        A service that overstays ``timeout`` has its stacks dumped into
        its output (see :meth:`Service.dump_and_kill`). An idle
        oslo.messaging reply waiter looks at its stop flag only every few
        seconds (its poll backs off to 5 s), so this takes up to ~5 s.
        """
        running = [s for s in self.services if s.running]
        for service in running:
            service.signal(signal.SIGTERM)
        problems = []
        deadline = time.monotonic() + timeout
        for service in running:
            assert service.proc is not None
            try:
                code = service.proc.wait(max(0.1, deadline
                                             - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.dump_and_kill()
                problems.append('%s did not stop within %.0fs of SIGTERM'
                                % (service.name, timeout))
                continue
            if code != 0:
                problems.append('%s exited with %s after SIGTERM'
                                % (service.name, code))
        return problems

    def kill_all(self) -> None:
        """SIGKILL every running service (the broker notices at once)."""
        running = [s for s in self.services if s.running]
        for service in running:
            service.signal(signal.SIGKILL)
        for service in running:
            service.kill()

    def log_errors(self) -> list[str]:
        """Tracebacks and ERROR lines in every service's log."""
        found = []
        for service in self.services:
            for line in (service.log() + service.output()).splitlines():
                if 'Traceback' in line or ' ERROR ' in line:
                    found.append('%s: %s' % (service.name, line))
        return found

    # -- jobs --

    def submit(self, aggregate: str, images: list[Image],
               **options: Any) -> objects.Job:
        ctxt = rpc.request_context(request_id='req-' + self.tag)
        return self.api.cache_images(ctxt, aggregate,
                                     [i.id for i in images], options)

    def get_job(self, job_id: str) -> objects.Job:
        return self.api.get_job(rpc.request_context(), job_id)

    def wait_job(self, job_id: str, timeout: float = 60.0,
                 interval: float = 0.1) -> objects.Job:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job.state.is_final:
                return job
            if time.monotonic() > deadline:
                pytest.fail('job %s still %s after %.0fs: %s\n%s' % (
                    job_id, job.state.value, timeout, job.counts,
                    self.describe()))
            time.sleep(interval)

    def manage(self, *args: str, timeout: float = 60.0
               ) -> subprocess.CompletedProcess:
        """Run precache-manage with the client config."""
        return subprocess.run(
            [script('precache-manage'), '--config-file', self.client_config,
             *args], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, check=False)

    def describe(self) -> str:
        return '\n'.join(s.describe() for s in self.services)


def results_by_host(job: objects.Job
                    ) -> dict[str, dict[str, objects.HostImageResult]]:
    """{host: {image id: result}}."""
    found: dict[str, dict[str, objects.HostImageResult]] = {}
    for result in job.results or []:
        found.setdefault(result.host, {})[result.image_id] = result
    return found


def run_together(commands: list[list[str]], timeout: float = 60.0
                 ) -> list[subprocess.CompletedProcess]:
    """Run commands in parallel; kill them all if one overstays."""
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
             for argv in commands]
    done = []
    try:
        deadline = time.monotonic() + timeout
        for argv, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(
                timeout=max(0.1, deadline - time.monotonic()))
            done.append(subprocess.CompletedProcess(argv, proc.returncode,
                                                    out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return done


def db_sync(url: str, folder: str) -> str:
    """Migrate the job store at ``url`` as an operator does, with
    ``precache-manage db sync``; returns ``url``."""
    config = write_conf(os.path.join(folder, 'manage.conf'), {
        'DEFAULT': {'log_file': os.path.join(folder, 'manage.log')},
        'database': {'connection': url}})
    done = subprocess.run(
        [script('precache-manage'), '--config-file', config, 'db', 'sync'],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'Job store is at revision' in done.stdout
    return url
