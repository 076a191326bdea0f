"""A RabbitMQ node of a test's own, for tests that stop or kill the broker.

The machine's broker (rabbit@localhost on 127.0.0.1:5672) is shared by
every other test and service and must never be disturbed, so a test that
restarts "the broker" starts a second node, ``precache-test-<port>@
localhost``, on free ports of its own, with every file under the test's
folder: its own configuration (not /etc/rabbitmq's, which names 5672), no
plug-ins, and its own Erlang cookie in its own HOME, so that none of the
rabbitmqctl commands here can even reach the shared node. The scripts
under /usr/lib/rabbitmq/bin are run directly: Debian's wrappers in
/usr/sbin would ``su rabbitmq``, which cannot write a root-owned tmp dir.

The node is stopped (``rabbitmqctl shutdown``, else SIGKILL) by
:meth:`PrivateBroker.stop`, which the ``private_broker`` fixture calls at
teardown whatever the test did; if pytest itself dies (killed, or
``timeout``), a watchdog kills the node. A start takes 3-6 s on two busy
cores (rabbitmqctl itself takes ~0.5 s a command), a shutdown ~3 s.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time

import pytest

HOST = '127.0.0.1'
SCRIPTS = '/usr/lib/rabbitmq/bin'


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PrivateBroker:
    """One RabbitMQ node on its own ports, data and logs under ``folder``.

    Its default vhost ``/`` is the test's alone; :attr:`url` reaches it as
    guest (allowed from localhost only, which is where the test runs).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.dist_port = free_port()
        self.node = 'precache-test-%d@localhost' % self.port
        self.home = os.path.join(folder, 'home')
        self.log_base = os.path.join(folder, 'log')
        self.pid_file = os.path.join(folder, 'node.pid')
        for path in (self.home, self.log_base):
            os.makedirs(path, exist_ok=True)
        cookie = os.path.join(self.home, '.erlang.cookie')
        with open(cookie, 'w') as stream:
            stream.write(secrets.token_hex(20).upper())
        os.chmod(cookie, 0o400)
        self.config_file = self._write('rabbitmq.conf', (
            'listeners.tcp.local = %s:%d\n'
            'loopback_users.guest = true\n'
            'log.file.level = info\n' % (HOST, self.port)))
        self.env_file = self._write('rabbitmq-env.conf', '')
        self.plugins_file = self._write('enabled_plugins', '[].\n')
        #: seconds each start took, up to the end of await_startup
        self.start_seconds: list[float] = []
        self.pid: int | None = None
        self._watchdog: subprocess.Popen | None = None

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.folder, name)
        with open(path, 'w') as stream:
            stream.write(text)
        return path

    @property
    def url(self) -> str:
        return 'rabbit://guest:guest@%s:%d/' % (HOST, self.port)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(('RABBITMQ_', 'ERL_'))}
        env.update(
            HOME=self.home,
            ERL_EPMD_ADDRESS=HOST,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.folder, 'mnesia'),
            RABBITMQ_LOG_BASE=self.log_base,
            RABBITMQ_PID_FILE=self.pid_file,
            RABBITMQ_ENABLED_PLUGINS_FILE=self.plugins_file,
            RABBITMQ_CONFIG_FILE=self.config_file,
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.folder,
                                                       'advanced.config'),
            RABBITMQ_CONF_ENV_FILE=self.env_file,
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                '-kernel inet_dist_use_interface {127,0,0,1}'),
        )
        return env

    def _run(self, script: str, *args: str, timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [os.path.join(SCRIPTS, script), *args], env=self.env(),
            cwd=self.folder, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        if check and done.returncode:
            pytest.fail('%s %s (node %s) failed: %s\n%s' % (
                script, ' '.join(args), self.node,
                (done.stderr or done.stdout).strip(), self.describe()))
        return done

    def ctl(self, *args: str, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess:
        """rabbitmqctl against this node only."""
        return self._run('rabbitmqctl', '-q', '-n', self.node, *args,
                         timeout=timeout, check=check)

    # -- the node's life ---------------------------------------------------

    def start(self, timeout: float = 90.0) -> float:
        """Start (or restart, same ports and data); seconds it took."""
        if not installed():
            pytest.skip('RabbitMQ (rabbitmq-server) is not installed')
        began = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)  # NOTE: a killed node's is stale
        # NOTE: the detached VM keeps the starter's stdout and stderr: a
        # file, not a pipe that closes when the starter is done.
        with open(os.path.join(self.log_base, 'startup.out'), 'ab') as out:
            subprocess.run(
                [os.path.join(SCRIPTS, 'rabbitmq-server'), '-detached'],
                env=self.env(), cwd=self.folder, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=timeout, check=True)
        # NOTE: await_startup fails at once while the node has not yet
        # registered its name with epmd, which takes a second or two.
        deadline = began + timeout
        while True:
            done = self.ctl('await_startup', '--timeout', '30', timeout=40,
                            check=False)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail('RabbitMQ node %s did not start within %.0fs: '
                            '%s\n%s' % (self.node, timeout,
                                        done.stderr.strip(),
                                        self.describe()))
            time.sleep(0.5)
        self.pid = self._read_pid()
        self._watch()
        seconds = time.monotonic() - began
        self.start_seconds.append(seconds)
        return seconds

    def _watch(self) -> None:
        """A shell that SIGKILLs the node (whatever its pid file names)
        when pytest dies; its parent-death signal fires only then, as
        :meth:`stop` SIGKILLs it first."""
        if self._watchdog is not None or not shutil.which('setpriv'):
            return
        self._watchdog = subprocess.Popen(
            ['setpriv', '--pdeathsig', 'TERM', '--', 'sh', '-c',
             'trap \'kill -9 "$(cat "$0")"; exit\' TERM; '
             'while :; do sleep 1; done', self.pid_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def _pid_from_file(self) -> int | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(self.pid_file) as stream:
                return int(stream.read().strip())
        return None

    def _read_pid(self) -> int:
        pid = self._pid_from_file()
        if pid is not None:
            return pid
        done = self.ctl('eval', 'list_to_integer(os:getpid()).')
        return int(done.stdout.strip())

    def stop_app(self) -> None:
        """The node stays up; the broker application (AMQP) stops."""
        self.ctl('stop_app')

    def start_app(self) -> None:
        self.ctl('start_app')
        self.ctl('await_startup')

    def kill9(self) -> None:
        """SIGKILL the node's Erlang VM and wait until it is gone."""
        pid = self.pid
        assert pid is not None, 'the node %s is not running' % self.node
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = None

    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self) -> None:
        """Shut the node down (it may be down already); never raises."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.pid is None:
            # NOTE: a start that failed half-way may have left it up.
            self.pid = self._pid_from_file()
            if self.pid is None or not self.running:
                self.pid = None
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ctl('shutdown', timeout=60, check=False)
        if self.running:
            self.kill9()
        self.pid = None

    def consumers(self) -> dict[str, int]:
        """{queue: consumers} of the node's vhost."""
        done = self.ctl('list_queues', '--no-table-headers', 'name',
                        'consumers')
        found = {}
        for line in done.stdout.splitlines():
            name, _, count = line.rpartition('\t')
            if name:
                found[name] = int(count)
        return found

    def describe(self, lines: int = 30) -> str:
        """The tail of the node's log, for failure reports."""
        path = os.path.join(self.log_base, '%s.log' % self.node)
        try:
            with open(path, errors='replace') as stream:
                tail = stream.read().splitlines()[-lines:]
        except FileNotFoundError:
            tail = ['(no log at %s)' % path]
        return '--- broker %s ---\n%s' % (self.node, '\n'.join(tail))


def installed() -> bool:
    """RabbitMQ's own scripts (not Debian's wrappers) are there."""
    return os.access(os.path.join(SCRIPTS, 'rabbitmq-server'), os.X_OK)
