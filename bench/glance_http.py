"""glance-http benchmark: holes and speed of a sparse image's download.

Writes a sparse raw image (default 1 GiB; per 1 MiB block, 20% random
data, the rest holes, as the all-in-one's sample images), serves it over
real HTTP from a separate process (``python -m http.server``, at Glance's
path ``/v2/images/<id>/file``) and downloads it with the agent's own
backend (GlanceHTTPBackend → VerifyingWriter: sha512 verified, fsynced),
through keystoneauth's session as the agent does, twice per round:

(a) holes only where a whole chunk (``[agent] chunk_size``, 4 MiB) is
    zeros;
(b) holes wherever a 64 KiB block is zeros (the agent's default).

For each it prints MB/s and the CPU seconds of the downloading process
(best of ``--repeat`` rounds, interleaved; on a busy machine the CPU time
says more than the rate) and the space the file takes on disk (``du``).
The last line is ``speed_ratio=<rate (b)/(a)> cpu_ratio=<CPU (b)/(a)>
disk_mb_chunks=<a> disk_mb_blocks=<b>``.

Usage: ``python bench/glance_http.py [--size-mib 1024] [--repeat 3]``.
Traffic goes to 127.0.0.1 only. Not a test: nothing here asserts a
timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

MiB = 1024 * 1024


def make_image(folder: str, size_mib: int, share: float) -> dict[str, Any]:
    """``<folder>/v2/images/<id>/file`` and its spec."""
    from precache.cmd import sample

    image_id = str(uuid.uuid4())
    path = os.path.join(folder, 'v2', 'images', image_id, 'file')
    os.makedirs(os.path.dirname(path))
    meta = sample.write_image(path, size_mib, share,
                              'bench-glance-http-%d-%s' % (size_mib, share))
    return {'id': image_id, 'disk_format': 'raw', **meta}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def serve(folder: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
         '--directory', folder, str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit('http.server did not start') from None
            time.sleep(0.1)
    return server, 'http://127.0.0.1:%d' % port


def download(url: str, spec: dict[str, Any], dest: str,
             zero_block: int) -> tuple[float, float, int]:
    """Seconds, CPU seconds of this process and bytes on disk of one
    verified download into ``dest``."""
    from keystoneauth1 import adapter, session

    from precache import objects
    from precache.agent.backends.glance import GlanceHTTPBackend
    from precache.agent.stream import VerifyingWriter
    from precache.clients.glance import GlanceClient

    VerifyingWriter.zero_block = zero_block
    client = GlanceClient(adapter.Adapter(session.Session(),
                                          endpoint_override=url))
    backend = GlanceHTTPBackend(client)
    os.sync()  # the previous round's writeback is not this one's
    start, cpu = time.monotonic(), time.process_time()
    size = backend.fetch(objects.ImageSpec.from_dict(spec), dest)
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu
    assert size == spec['size']
    on_disk = os.stat(dest).st_blocks * 512
    os.unlink(dest)
    return seconds, cpu, on_disk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--share', type=float, default=0.2,
                        help='share of 1 MiB blocks holding data (0.2)')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()

    from precache import service
    from precache.conf import CONF

    service.register_library_opts(CONF)
    CONF([], project='precache', default_config_files=[])
    chunk = CONF.agent.chunk_size * 1024
    from precache.agent.stream import ZERO_BLOCK

    folder = tempfile.mkdtemp(prefix='precache-bench-glance-')
    server = None
    try:
        spec = make_image(folder, args.size_mib, args.share)
        server, url = serve(folder)
        dest = os.path.join(folder, 'download.part')
        cases = {'chunks': chunk, 'blocks': ZERO_BLOCK}
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        disk: dict[str, int] = {}
        for round_ in range(args.repeat):
            for name, block in cases.items():
                seconds, cpu, on_disk = download(url, spec, dest, block)
                best[name] = min(best.get(name, seconds), seconds)
                best_cpu[name] = min(best_cpu.get(name, cpu), cpu)
                disk[name] = on_disk
                print('round %d %-6s (holes per %4d KiB): %6.1f MB/s, '
                      '%5.2f CPU s, %5.0f MB on disk'
                      % (round_ + 1, name, block // 1024,
                         spec['size'] / seconds / 1e6, cpu, on_disk / 1e6),
                      flush=True)
        for name in cases:
            print('%-6s best %6.1f MB/s, %5.2f CPU s, %5.0f MB on disk of '
                  '%d MB' % (name, spec['size'] / best[name] / 1e6,
                             best_cpu[name], disk[name] / 1e6,
                             spec['size'] // 10 ** 6))
        print('speed_ratio=%.3f cpu_ratio=%.3f disk_mb_chunks=%.0f '
              'disk_mb_blocks=%.0f'
              % (best['chunks'] / best['blocks'],
                 best_cpu['blocks'] / best_cpu['chunks'],
                 disk['chunks'] / 1e6, disk['blocks'] / 1e6))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
