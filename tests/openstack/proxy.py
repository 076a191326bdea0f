"""A small HTTP proxy that misbehaves on demand, in front of a real server.

It cuts a response after some bytes (a broken download: with a reset,
which makes the client's kernel drop what it had not read yet, as a
dropped link does, or with a close after every byte arrived), answers 503
(a struggling service) or refuses ``Range`` with 400 (what Glance's RBD
store does), and records every request line and its Range header (and,
in ``headers``, all its headers), and the bytes of each response's body
it relayed (``body_bytes``: what crossed the wire, cut or not). One
request per connection (it forces ``Connection: close``), which keeps the
relay trivial.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after: int | None = None  # response bytes, then cut
        self.cuts_left = 0                  # responses still to cut
        self.cut_with_reset = True          # else a close (FIN)
        self.fail_5xx = 0                   # requests still to answer 503
        self.refuse_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.headers: list[dict[str, str]] = []  # lower-case names
        self.body_bytes: list[int] = []     # per relayed response
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,),
                             daemon=True).start()

    @staticmethod
    def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b'\r\n\r\n')
        return head, rest

    def _serve(self, client: socket.socket) -> None:
        with client:
            head, body = self._read_head(client)
            if not head:
                return
            lines = head.decode('latin-1').split('\r\n')
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(':')
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get('content-length') or 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    break
                body += chunk
            with self._lock:
                self.requests.append((lines[0], headers.get('range')))
                self.headers.append(headers)
                if self.fail_5xx:
                    self.fail_5xx -= 1
                    client.sendall(b'HTTP/1.1 503 Service Unavailable\r\n'
                                   b'Content-Length: 0\r\n'
                                   b'Connection: close\r\n\r\n')
                    return
                if self.refuse_range and 'range' in headers:
                    message = b'400 Bad Request: Range not supported'
                    client.sendall(b'HTTP/1.1 400 Bad Request\r\n'
                                   b'Content-Length: %d\r\n'
                                   b'Connection: close\r\n\r\n%s'
                                   % (len(message), message))
                    return
                cut = None
                if self.cuts_left and self.cut_after is not None:
                    self.cuts_left -= 1
                    cut = self.cut_after
            kept = [line for line in lines[1:]
                    if not line.lower().startswith('connection:')]
            request = '\r\n'.join([lines[0], *kept, 'Connection: close',
                                   '', '']).encode('latin-1') + body
            self._relay(client, request, cut)

    def _relay(self, client: socket.socket, request: bytes,
               cut: int | None) -> None:
        with socket.create_connection(('127.0.0.1', self.upstream_port)
                                      ) as upstream:
            upstream.sendall(request)
            sent, head = 0, b''
            with self._lock:
                index = len(self.body_bytes)
                self.body_bytes.append(0)

            def count(data: bytes) -> None:
                nonlocal head
                if head.endswith(b'\r\n\r\n'):
                    body = len(data)
                else:
                    head += data
                    end = head.find(b'\r\n\r\n')
                    body = 0 if end < 0 else len(head) - end - 4
                    head = head if end < 0 else head[:end + 4]
                with self._lock:
                    self.body_bytes[index] += body

            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    return
                if cut is not None and sent + len(chunk) >= cut:
                    client.sendall(chunk[:cut - sent])
                    count(chunk[:cut - sent])
                    if self.cut_with_reset:
                        # NOTE: a reset, not a clean close, like a dying
                        # server or a dropped link.
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER,
                            b'\x01\x00\x00\x00\x00\x00\x00\x00')
                    else:
                        # the body ends short of its Content-Length once
                        # the client has read all it was sent
                        client.shutdown(socket.SHUT_WR)
                        client.settimeout(30)
                        with contextlib.suppress(OSError):
                            while client.recv(65536):
                                pass
                    return
                client.sendall(chunk)
                count(chunk)
                sent += len(chunk)
