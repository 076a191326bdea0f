"""Every error the API returns is JSON shaped like Nova's faults.

``{"badRequest": {"code": 400, "message": "..."}}``: the key names the
kind (Nova's names), the message says what to fix, and no traceback ever
reaches a caller. :class:`JsonErrors` sits outermost, so errors made by
middleware we do not own (keystonemiddleware's 401, a server's 413) are
rewritten into the same shape, and anything that escapes becomes a 500
with the request id to find the log line.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import oslo_messaging as messaging
import webob
import webob.exc

from precache import context, exception

LOG = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Nova's names (nova/api/openstack/wsgi.py: Fault._fault_names).
FAULT_NAMES = {400: 'badRequest', 401: 'unauthorized', 403: 'forbidden',
               404: 'itemNotFound', 405: 'badMethod',
               409: 'conflictingRequest', 413: 'overLimit',
               415: 'badMediaType', 429: 'overLimit',
               501: 'notImplemented', 503: 'serviceUnavailable'}

_KINDS = {*FAULT_NAMES.values(), 'computeFault'}

#: Headers kept when a foreign error body is rewritten.
_KEEP = ('www-authenticate', 'allow', 'x-openstack-request-id',
         'openstack-api-version', 'x-openstack-nova-api-version', 'vary',
         'retry-after', 'location')


def body(code: int, message: str) -> dict[str, Any]:
    return {FAULT_NAMES.get(code, 'computeFault'): {'code': code,
                                                    'message': message}}


def response(code: int, message: str,
             headers: dict[str, str] | None = None) -> webob.Response:
    resp = webob.Response(status=code, json_body=body(code, message),
                          charset='UTF-8')
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _text(exc: BaseException) -> str:
    """An error's own message, without the traceback RPC appends."""
    text = getattr(exc, 'message', None) or str(exc)
    return str(text).split('\n')[0]


def from_exception(exc: BaseException,
                   request_id: str | None = None) -> webob.Response:
    """Map one of ours, a messaging or a webob error to a fault."""
    if isinstance(exc, webob.exc.HTTPException):
        code = exc.code or 500
        headers = {name: value for name, value in exc.headers.items()
                   if name.lower() in _KEEP}
        return response(code, exc.detail or exc.explanation or
                        HTTPStatus(code).phrase, headers)
    if isinstance(exc, UnicodeError):
        return response(400, 'The request is not valid UTF-8.')
    if isinstance(exc, exception.PrecacheException):
        code = exc.code if exc.code in FAULT_NAMES else 500
        return response(code, _text(exc))
    if isinstance(exc, messaging.MessagingTimeout):
        return response(503, 'No conductor answered in time; is '
                        'precache-conductor running? Try again later.',
                        {'Retry-After': '5'})
    if isinstance(exc, messaging.RemoteError):
        LOG.error('Conductor failed: %(type)s: %(value)s',
                  {'type': exc.exc_type, 'value': _text(exc)})
        return response(500, 'The conductor failed (%s); see its log, '
                        'request %s.' % (exc.exc_type, request_id))
    if isinstance(exc, messaging.MessagingException):
        LOG.error('Message bus: %s', exc)
        return response(503, 'The message bus is unreachable; try again '
                        'later.', {'Retry-After': '5'})
    LOG.error('Unexpected API error',
              exc_info=(type(exc), exc, exc.__traceback__))
    return response(500, 'Unexpected API error; see the log, request %s.'
                    % request_id)


def _is_ours(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(data, dict) or len(data) != 1:
        return False
    kind, inner = next(iter(data.items()))
    if kind not in _KINDS:
        return False
    return isinstance(inner, dict) and isinstance(inner.get('code'), int) \
        and isinstance(inner.get('message'), str)


def _message_of(raw: bytes, code: int) -> str:
    """The message of a foreign error body (JSON or HTML/text)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and value.get('message'):
                return str(value['message'])
        if data.get('message'):
            return str(data['message'])
    text = html.unescape(re.sub(r'<[^>]+>', ' ', raw.decode('utf-8',
                                                            'replace')))
    text = ' '.join(text.split())
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ \
        else 'Error'
    if text.startswith('%d %s' % (code, phrase)):
        text = text[len('%d %s' % (code, phrase)):].strip()
    return text[:500] or phrase


class JsonErrors:
    """Outermost middleware: every error response is one of ours."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        started: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]],
                    exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        # NOTE: the request's ids, current in this (reused) server thread
        # from the start, so that no line logs a previous request's. The
        # caller's identity joins them once authenticated (app.Context).
        context.RequestContext(
            request_id=environ.get('openstack.request_id'),
            global_request_id=environ.get('openstack.global_request_id'))
        try:
            result = self.app(environ, capture)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, 'close', None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - never a traceback out
            resp = from_exception(exc, environ.get('openstack.request_id'))
            return resp(environ, start_response)
        status, headers = started
        code = int(status.split(' ', 1)[0])
        raw = b''.join(chunks)
        if code < 400 or environ.get('REQUEST_METHOD') == 'HEAD' or \
                _is_ours(raw):
            start_response(status, headers)
            return [raw]
        kept = {name: value for name, value in headers
                if name.lower() in _KEEP}
        resp = response(code, _message_of(raw, code), kept)
        return resp(environ, start_response)
