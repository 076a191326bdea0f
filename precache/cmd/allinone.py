"""precache-all-in-one: the whole system in one process, no OpenStack.

The same conductor and agent code as production; only the transport
(kombu's in-process memory bus), the inventory (a static file), the image
source (local files) and the job store (SQLite) differ. Each simulated
host gets its own cache folder under the state directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import oslo_messaging as messaging

from precache import context, rpc, service
from precache.agent.service import AgentService
from precache.agent.stores.file import FileStore
from precache.cmd import (
    console,
    guarded,
    sample,
    stop_all,
    wait_for_signal,
)
from precache.conductor.inventory import StaticInventory
from precache.conductor.rpcapi import ConductorAPI
from precache.conductor.service import ConductorService
from precache.conf import CONF
from precache.db import migration


def _configure(state_dir: str, catalog: str, inventory: str) -> None:
    service.register_library_opts()
    defaults = {
        ('DEFAULT', 'transport_url'): 'kombu+memory:////',
        ('DEFAULT', 'state_path'): state_dir,
        ('DEFAULT', 'host'): 'all-in-one',
        ('DEFAULT', 'log_file'): os.path.join(state_dir, 'precache.log'),
        ('DEFAULT', 'use_stderr'): False,
        ('inventory', 'static_file'): inventory,
        ('image_service', 'local_catalog'): catalog,
        ('conductor', 'call_monitor_timeout'): 10,
        # NOTE: --serve binds to 127.0.0.1 only; see _serve.
        ('api', 'auth_strategy'): 'noauth',
        # NOTE: nothing in this process reads notifications, and kombu's
        # memory transport would keep every one of them in memory.
        ('notifications', 'enabled'): False,
    }
    for (group, name), value in defaults.items():
        CONF.set_default(name, value,
                         group=None if group == 'DEFAULT' else group)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='precache-all-in-one',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--state-dir', default=os.path.abspath(
        'precache-demo'), help='where images, caches, the job store and '
        'the log go (default: ./precache-demo)')
    parser.add_argument('--aggregate', default='compute',
                        help='aggregate to cache on (compute: 12 hosts in '
                             '3 cells; edge: 3 hosts)')
    parser.add_argument('--image', action='append',
                        help='image name or id (default: every sample)')
    parser.add_argument('--config-file', action='append', default=[])
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--serve', action='store_true',
                        help='run no job: serve the REST API (no auth, '
                             '127.0.0.1 only) until interrupted')
    parser.add_argument('--api-port', type=int, default=8780,
                        help='port of the API with --serve (default 8780)')
    return parser


@guarded
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    state_dir = os.path.abspath(args.state_dir)
    out = console.console(stderr=True)
    catalog = sample.ensure_images(
        os.path.join(state_dir, 'images'),
        lambda name: out.print('Generating sample image %s ...' % name))
    inventory = sample.ensure_inventory(
        os.path.join(state_dir, 'inventory.yaml'))
    _configure(state_dir, catalog, inventory)
    service.prepare_service(
        ['precache-all-in-one',
         *[a for p in args.config_file for a in ('--config-file', p)]])
    service.check_config('precache-all-in-one')
    migration.upgrade()

    transport = rpc.get_transport(CONF)
    static = StaticInventory()
    agents = [AgentService(transport, host=host, cell=cell,
                           store=FileStore(os.path.join(
                               state_dir, 'hosts', host, 'instances')))
              for cell, hosts in sample.CELLS.items() for host in hosts]
    conductor = ConductorService(transport, inventory=static)
    # NOTE: the agents listen before the conductor resumes an interrupted
    # job (a call to an agent not yet listening is lost on this bus), and
    # beat again once it listens: their first heartbeats, cast before,
    # reached nobody. The conductor stops first, leaving the hosts of an
    # interrupted job pending for the next run; their agents' goodbyes
    # would skip them.
    for agent in agents:
        agent.start()
    conductor.start()
    for agent in agents:
        agent.heartbeater.beat()
    try:
        code = _serve(args, out) if args.serve else \
            _run(args, transport, out)
    finally:
        stop_all([conductor, *agents])
        rpc.cleanup()
    logging.shutdown()
    sys.exit(code)


def _serve(args: argparse.Namespace, out: console.Console) -> int:
    """The REST API over the embedded conductor, until Ctrl-C."""
    from precache.api import app as api_app
    from precache.cmd import api as api_cmd

    server = api_cmd.make_server(api_app.build_app(), '127.0.0.1',
                                 args.api_port, CONF.api.server_threads)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out.print('precache API on http://127.0.0.1:%d (NO AUTHENTICATION; '
              'aggregates: compute, edge; images: %s). Ctrl-C stops.' % (
                  server.server_address[1], ', '.join(
                      '%s=%s' % (name, sample.image_id(name))
                      for name, _, _ in sample.IMAGES)))
    try:
        wait_for_signal()
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _run(args: argparse.Namespace, transport: messaging.Transport,
         out: console.Console) -> int:
    names = {sample.image_id(name): name for name, _, _ in sample.IMAGES}
    wanted = args.image or [name for name, _, _ in sample.IMAGES]
    by_name = {name: image_id for image_id, name in names.items()}
    image_ids = [by_name.get(ref, ref) for ref in wanted]
    api = ConductorAPI(transport, timeout=60)
    ctxt = context.get_internal_context()
    job = api.cache_images(ctxt, args.aggregate, image_ids)
    if not args.json:
        out.print('Job %s: %d image(s) on %d host(s) of aggregate %s; '
                  'caches under %s/hosts' % (
                      job.id, len(job.image_ids), job.hosts, job.aggregate,
                      CONF.state_path))
    job = console.watch(
        lambda: api.get_job(ctxt, job.id, with_results=False),
        interval=0.2, show_progress=False if args.json else None)
    job = api.get_job(ctxt, job.id)
    if args.json:
        console.print_json(job.to_dict())
    else:
        console.console().print(console.host_table(job, names))
        print(console.summary_line(job))
        print('Log: %s' % CONF.log_file)
    return console.exit_code(job)


if __name__ == '__main__':
    main()
