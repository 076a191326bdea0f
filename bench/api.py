"""API benchmark: POST and GET throughput of precache-api, two servers.

Starts a private RabbitMQ vhost, ``precache-conductor`` and one
``precache-agent`` (processes, SQLite job store), then serves the API
twice, without auth: on its own threaded stdlib server (``precache-api``)
and under gunicorn (2 workers x 8 threads, ``precache.wsgi.api``). For
each, N client threads run for S seconds:

* POST ``/os-aggregates/bench-empty/images`` (one image; the aggregate has
  no host, so this measures validation, RPC, the job store and the
  answer, not a fan-out);
* GET ``/jobs/<id>`` of a recorded job.

It prints req/s, p50 and p99 per server and operation; the last line is
gunicorn's ``post_per_s=<x> get_per_s=<y> p99_ms=<z>`` (p99: the worse of
POST and GET). Usage: ``python bench/api.py [--seconds 5] [--clients
16]``. Traffic goes to 127.0.0.1 only and every run is bounded in time.
Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

BIN = os.path.dirname(os.path.abspath(sys.executable))
IMAGE_ID = '6a1f0d3e-0000-4000-8000-0000000000a1'
BODY = json.dumps({'cache': [{'id': IMAGE_ID}]}).encode()
HEADERS = {'Content-Type': 'application/json',
           'OpenStack-API-Version': 'compute 2.81'}


def rabbitmqctl(*args: str) -> None:
    subprocess.run(['rabbitmqctl', '-q', *args], check=True, timeout=60,
                   capture_output=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def write_files(root: str, vhost: str, port: int) -> str:
    images = os.path.join(root, 'images')
    os.makedirs(images)
    with open(os.path.join(images, 'tiny.raw'), 'wb') as out:
        out.write(b'\0' * 4096)
    with open(os.path.join(images, 'catalog.json'), 'w') as out:
        json.dump([{'id': IMAGE_ID, 'name': 'tiny', 'status': 'active',
                    'size': 4096, 'disk_format': 'raw',
                    'locations': [{'url': 'tiny.raw'}]}], out)
    with open(os.path.join(root, 'inventory.yaml'), 'w') as out:
        out.write('cells: {c1: {hosts: [bench-h1]}}\naggregates:\n'
                  '- {id: 1, name: bench-one, hosts: [bench-h1]}\n'
                  '- {id: 2, name: bench-empty, hosts: []}\n')
    conf = os.path.join(root, 'precache.conf')
    with open(conf, 'w') as out:
        out.write(f'''[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/{vhost}
state_path = {root}
host = bench-h1
log_dir = {root}
[database]
connection = sqlite:///{root}/jobs.sqlite
[inventory]
static_file = {root}/inventory.yaml
[image_service]
local_catalog = {root}/images/catalog.json
[agent]
instances_path = {root}/instances
[api]
host_ip = 127.0.0.1
port = {port}
auth_strategy = noauth
''')
    return conf


def start(args: list[str], env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})},
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit('server exited %s' % process.returncode)
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            conn.request('GET', '/')
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit('server on port %d not ready' % port)


def _one(conn: http.client.HTTPConnection, method: str, path: str,
         body: bytes | None) -> tuple[int, bytes, bool]:
    conn.request(method, path, body=body, headers=HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, resp.will_close


def load(port: int, method: str, path: str, body: bytes | None,
         clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads for ``seconds``; throughput and latencies."""
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        mine, bad = [], []
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status, _, close = _one(conn, method, path, body)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection('127.0.0.1', port,
                                                  timeout=30)
                bad.append(0)
                continue
            mine.append(time.perf_counter() - started)
            if status >= 300:
                bad.append(status)
            if close:
                conn.close()
                conn = http.client.HTTPConnection('127.0.0.1', port,
                                                  timeout=30)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float('nan')
        return latencies[min(len(latencies) - 1,
                             int(p * len(latencies)))] * 1000
    return {'n': len(latencies), 'per_s': len(latencies) / elapsed,
            'p50': pct(0.50), 'p99': pct(0.99), 'errors': len(errors)}


def bench_server(name: str, port: int, process: subprocess.Popen[bytes],
                 clients: int, seconds: float) -> dict[str, dict[str, Any]]:
    wait_ready(port, process)
    # NOTE: a call sent before the conductor consumes its queue is lost
    # (503 after the API's rpc_timeout): retry until one is accepted.
    deadline = time.monotonic() + 180
    while True:
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
        status, data, _ = _one(conn, 'POST',
                               '/os-aggregates/bench-one/images', BODY)
        conn.close()
        if status != 503 or time.monotonic() > deadline:
            break
    assert status == 202, (status, data)
    job_id = json.loads(data)['job']['id']
    results = {
        'POST': load(port, 'POST', '/os-aggregates/bench-empty/images',
                     BODY, clients, seconds),
        'GET': load(port, 'GET', '/jobs/%s' % job_id, None, clients,
                    seconds),
    }
    for op, found in results.items():
        print('%-9s %-5s %7d %9.1f %8.1f %8.1f %6d' % (
            name, op, found['n'], found['per_s'], found['p50'],
            found['p99'], found['errors']), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--clients', type=int, default=16)
    args = parser.parse_args()
    vhost = 'precache-bench-api-%s' % uuid.uuid4().hex[:8]
    rabbitmqctl('add_vhost', vhost)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*',
                    '.*')
        with tempfile.TemporaryDirectory(prefix='precache-bench-api-') \
                as root:
            port = free_port()
            conf = write_files(root, vhost, port)
            subprocess.run([os.path.join(BIN, 'precache-manage'),
                            '--config-file', conf, 'db', 'sync'],
                           check=True, capture_output=True, timeout=120)
            for script in ('precache-conductor', 'precache-agent'):
                processes.append(start([os.path.join(BIN, script),
                                        '--config-file', conf]))
            print('%-9s %-5s %7s %9s %8s %8s %6s' % (
                'server', 'op', 'n', 'req/s', 'p50 ms', 'p99 ms', 'errors'))
            stdlib = start([os.path.join(BIN, 'precache-api'),
                            '--config-file', conf])
            processes.append(stdlib)
            bench_server('stdlib', port, stdlib, args.clients, args.seconds)
            stop(stdlib)
            port = free_port()
            gunicorn = start(
                [os.path.join(BIN, 'gunicorn'), '--no-control-socket',
                 '--worker-class', 'gthread', '--workers', '2',
                 '--threads', '8', '--bind', '127.0.0.1:%d' % port,
                 'precache.wsgi.api:application'],
                env={'PRECACHE_CONFIG_FILES': conf,
                     'XDG_CACHE_HOME': os.path.join(root, 'xdg')})
            processes.append(gunicorn)
            found = bench_server('gunicorn', port, gunicorn, args.clients,
                                 args.seconds)
            for process in processes:
                stop(process)
    finally:
        for process in processes:
            stop(process)
        rabbitmqctl('delete_vhost', vhost)
    print('post_per_s=%.1f get_per_s=%.1f p99_ms=%.1f' % (
        found['POST']['per_s'], found['GET']['per_s'],
        max(found['POST']['p99'], found['GET']['p99'])))


if __name__ == '__main__':
    main()
