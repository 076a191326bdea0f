"""Compute microversions, as far as Nova's clients need them.

precache serves one Nova route, ``POST /os-aggregates/{id}/images``, which
exists from 2.81 on. The version a request asks for (``OpenStack-API-Version:
compute 2.81`` or the legacy ``X-OpenStack-Nova-API-Version: 2.81``) is
checked against [MIN, MAX] as Nova does (outside → 406) and echoed on every
response; novaclient warns when the echo is missing.

One departure: a request without a header gets MAX, not MIN as in Nova,
because precache has a single version of its only Nova route and a bare
``curl`` should reach it. Clients that ask for less than 2.81 get Nova's
404 for that route.
"""

from __future__ import annotations

import re
from typing import Any

import webob.exc

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 81)
#: The first version with ``POST /os-aggregates/{id}/images``.
AGGREGATE_IMAGES = (2, 81)

HEADER = 'OpenStack-API-Version'
LEGACY_HEADER = 'X-OpenStack-Nova-API-Version'
SERVICE = 'compute'
ENVIRON_KEY = 'precache.api_version'

_VERSION = re.compile(r'^([1-9]\d{0,2})\.(0|[1-9]\d{0,2})$')

Version = tuple[int, int]


def text(version: Version) -> str:
    return '%d.%d' % version


def _requested(environ: dict[str, Any]) -> str | None:
    header = environ.get('HTTP_OPENSTACK_API_VERSION')
    if header:
        for item in header.split(','):
            service, _, value = item.strip().partition(' ')
            if service.lower() == SERVICE:
                return value.strip()
    return environ.get('HTTP_X_OPENSTACK_NOVA_API_VERSION') or None


def parse(environ: dict[str, Any]) -> Version:
    """The version a request asks for; 400 malformed, 406 out of range."""
    value = _requested(environ)
    if value is None:
        return MAX_VERSION
    if value.lower() == 'latest':
        return MAX_VERSION
    match = _VERSION.match(value)
    if not match:
        raise webob.exc.HTTPBadRequest(
            detail='API Version String %s is of invalid format. Must be of '
                   'format MajorNum.MinorNum.' % value[:40])
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise webob.exc.HTTPNotAcceptable(
            detail='Version %s is not supported by the API. Minimum is %s '
                   'and maximum is %s.' % (value, text(MIN_VERSION),
                                          text(MAX_VERSION)))
    return version


def headers(version: Version) -> list[tuple[str, str]]:
    """What every response carries, like Nova's."""
    return [(HEADER, '%s %s' % (SERVICE, text(version))),
            (LEGACY_HEADER, text(version)),
            ('Vary', '%s, %s' % (HEADER, LEGACY_HEADER))]


def require(environ: dict[str, Any], minimum: Version) -> None:
    """Nova's answer to a method absent at the requested version: 404."""
    if environ.get(ENVIRON_KEY, MAX_VERSION) < minimum:
        raise webob.exc.HTTPNotFound(
            detail='This resource exists from compute API version %s on; '
                   'the request asked for %s.' % (
                       text(minimum), text(environ[ENVIRON_KEY])))
