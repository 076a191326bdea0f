"""precache-api's built-in HTTP server: stdlib, bounded and time-limited.

A connection gets a thread of its own (at most [api] max_connections; past
that, new connections wait in the listen queue). That thread reads the
whole request — request line, headers and body — within
[api] client_timeout, and only then takes one of [api] server_threads
slots to run the application. A client that announces a body and never
sends it therefore holds a connection thread for at most
client_timeout and never a slot, so it cannot stall anyone else's
request; without the deadline forty such clients froze the server.

HTTP/1.0 semantics, as wsgiref: one request per connection, and a body
needs Content-Length (411 otherwise; run precache.wsgi.api:application
under gunicorn for chunked uploads).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import socketserver
import threading
import time
from typing import Any, cast
from wsgiref import simple_server

from precache.api import faults

LOG = logging.getLogger(__name__)

#: Longest request line / header line accepted (as http.server).
_MAX_LINE = 65536


class RequestTimeout(Exception):
    """The client did not send its request within the deadline."""


class _DeadlineReader:
    """A socket's reader whose every read ends by one deadline.

    A per-read timeout alone lets a client keep a connection by sending
    one byte at a time; the deadline bounds the whole request.
    """

    def __init__(self, rfile: Any, sock: socket.socket,
                 timeout: float) -> None:
        self.rfile = rfile
        self.sock = sock
        self.deadline = time.monotonic() + timeout

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout()
        self.sock.settimeout(left)

    def readline(self, size: int = -1) -> bytes:
        self._arm()
        try:
            return bytes(self.rfile.readline(size))
        except TimeoutError:
            raise RequestTimeout() from None

    def read(self, size: int = -1) -> bytes:
        self._arm()
        try:
            return bytes(self.rfile.read(size))
        except TimeoutError:
            raise RequestTimeout() from None

    def close(self) -> None:
        self.rfile.close()


class _Handler(simple_server.WSGIRequestHandler):
    server: Server

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The server's own refusals (414, 411, 408) in the API's fault
        body, as JSON, not http.server's HTML page."""
        short = self.responses.get(code, ('Error', ''))[0]
        raw = json.dumps(faults.body(code, message or short)).encode()
        self.log_error('code %d, message %s', code, message or short)
        self.send_response(code, short)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(raw)))
        self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD' and code >= 200 and code not in (204, 304):
            self.wfile.write(raw)

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

    def _read_request(self) -> bytes | None:
        """The body (b'' if none); None when an error was sent."""
        reader = _DeadlineReader(self.rfile, self.connection,
                                 self.server.client_timeout)
        self.rfile = reader  # type: ignore[assignment]
        self.raw_requestline = reader.readline(_MAX_LINE + 1)
        if not self.raw_requestline:
            return None  # NOTE: connected and closed, or a probe
        if len(self.raw_requestline) > _MAX_LINE:
            self.requestline = self.request_version = self.command = ''
            self.send_error(414)
            return None
        if not self.parse_request():
            return None
        length = self.headers.get('Content-Length')
        if length is None:
            if self.headers.get('Transfer-Encoding'):
                self.send_error(411, 'Send Content-Length (the built-in '
                                'server reads no chunked body)')
                return None
            return b''
        if not length.strip().isdigit():
            return b''  # NOTE: the application answers 400 for it
        size = int(length)
        if size > self.server.max_body:
            return b''  # NOTE: the application answers 413 unread
        body = reader.read(size)
        if len(body) < size:
            raise RequestTimeout()  # NOTE: the client closed mid-body
        return body

    def handle(self) -> None:
        try:
            body = self._read_request()
        except RequestTimeout:
            LOG.info('%s sent no complete request within %ss; closed',
                     self.address_string(), self.server.client_timeout)
            self.close_connection = True
            return
        if body is None:
            return
        # NOTE: a client that does not read its answer must not hold a
        # slot for longer than it may take to send a request.
        self.connection.settimeout(self.server.client_timeout)
        app = self.server.get_app()
        assert app is not None
        with self.server.slots:
            handler = simple_server.ServerHandler(
                io.BytesIO(body), cast(Any, self.wfile), self.get_stderr(),
                self.get_environ(), multithread=True)
            handler.request_handler = self  # type: ignore[attr-defined]
            handler.run(app)


class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    """A thread per connection, ``threads`` requests run at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], threads: int,
                 client_timeout: float, max_connections: int,
                 max_body: int) -> None:
        if ':' in address[0]:
            self.address_family = socket.AF_INET6
        self.slots = threading.BoundedSemaphore(threads)
        self.client_timeout = client_timeout
        self.max_body = max_body
        self._connections = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # NOTE: the accept loop waits here when max_connections are open;
        # each is closed within client_timeout unless it is being served.
        self._connections.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any,
                               client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # NOTE: a client that hung up; the application never raises.
        LOG.debug('Connection from %s failed', client_address[0],
                  exc_info=True)


def make_server(app: Any, host: str, port: int, threads: int,
                client_timeout: float, max_connections: int,
                max_body: int) -> Server:
    server = Server((host, port), threads, client_timeout,
                    max_connections, max_body)
    server.set_app(app)
    return server
