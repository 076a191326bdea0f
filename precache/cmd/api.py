"""precache-api: the REST API on Python's own threaded WSGI server.

Good for the embedded mode and small sites; for more, run
``precache.wsgi.api:application`` under gunicorn or uwsgi.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
import threading
from typing import Any
from wsgiref import simple_server

from precache import rpc, service
from precache.api import app as api_app
from precache.cmd import guarded, wait_for_signal
from precache.conf import CONF

LOG = logging.getLogger(__name__)


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        LOG.info('%s %s', self.address_string(), format % args)

    def address_string(self) -> str:
        return str(self.client_address[0])

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        # NOTE: wsgiref fills in text/plain for a body without a type;
        # like Nova, precache reads such a body as JSON.
        if self.headers.get('Content-Type') is None:
            environ.pop('CONTENT_TYPE', None)
        return environ


class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """A thread per request, at most [api] server_threads at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], threads: int) -> None:
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(threads)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any,
                               client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # NOTE: a client that hung up; the application never raises.
        LOG.debug('Connection from %s failed', client_address[0],
                  exc_info=True)


def make_server(app: Any, host: str, port: int,
                threads: int = 32) -> Server:
    server = Server((host, port), threads)
    server.set_app(app)
    return server


@guarded
def main() -> None:
    service.prepare_service(sys.argv)
    service.check_config('precache-api')
    rpc.check_reachable(CONF)
    server = make_server(api_app.build_app(), CONF.api.host_ip,
                         CONF.api.port, CONF.api.server_threads)
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
