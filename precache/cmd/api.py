"""precache-api: the REST API on its built-in server (wsgi/server.py).

Bounded and time-limited, good for the embedded mode and small sites; for
more, run ``precache.wsgi.api:application`` under gunicorn or uwsgi.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from precache import rpc, service
from precache.api import app as api_app
from precache.cmd import guarded, wait_for_signal
from precache.conf import CONF
from precache.wsgi import server as server_mod

LOG = logging.getLogger(__name__)


def make_server(app: Any, host: str, port: int,
                threads: int | None = None) -> server_mod.Server:
    """The built-in server, per [api] (see precache/wsgi/server.py)."""
    return server_mod.make_server(
        app, host, port, threads or CONF.api.server_threads,
        client_timeout=CONF.api.client_timeout,
        max_connections=CONF.api.max_connections,
        max_body=CONF.api.max_request_body_size)


@guarded
def main() -> None:
    service.prepare_service(sys.argv)
    service.check_config('precache-api')
    rpc.check_reachable(CONF)
    server = make_server(api_app.build_app(), CONF.api.host_ip,
                         CONF.api.port)
    thread = threading.Thread(target=server.serve_forever,
                              name='api-server', daemon=True)
    thread.start()
    LOG.info('precache-api listening on http://%s:%d (auth: %s)',
             CONF.api.host_ip, server.server_address[1],
             CONF.api.auth_strategy)
    service.freeze_startup_objects()
    try:
        wait_for_signal()
    finally:
        server.shutdown()
        server.server_close()
        rpc.cleanup()


if __name__ == '__main__':
    main()
