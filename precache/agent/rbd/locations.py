"""Glance's RBD locations: ``rbd://<fsid>/<pool>/<image>/<snapshot>``.

The same rules as Nova's ``rbd_utils.parse_url``: four non-empty,
URL-quoted parts. Unlike Nova's download path, the fsid is kept and used:
a location is served only by the configured cluster with that fsid.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

SCHEME = 'rbd://'


class InvalidLocation(ValueError):
    """Not a usable RBD snapshot location; ``str()`` says why."""


@dataclasses.dataclass(frozen=True)
class RbdLocation:
    fsid: str
    pool: str
    image: str
    snapshot: str

    @property
    def url(self) -> str:
        return SCHEME + '/'.join(urllib.parse.quote(part, safe='')
                                 for part in (self.fsid, self.pool,
                                              self.image, self.snapshot))

    def __str__(self) -> str:
        return self.url


def is_rbd(url: str) -> bool:
    return url.startswith(SCHEME)


def parse(url: str) -> RbdLocation:
    """The parts of an RBD location; :class:`InvalidLocation` otherwise."""
    if not is_rbd(url):
        raise InvalidLocation('%s: not an rbd:// location' % url)
    pieces = url[len(SCHEME):].split('/')
    if len(pieces) != 4:
        raise InvalidLocation(
            '%s: not an rbd snapshot location (need rbd://<fsid>/<pool>/'
            '<image>/<snapshot>, got %d part(s))' % (url, len(pieces)))
    parts = [urllib.parse.unquote(piece) for piece in pieces]
    if not all(parts):
        raise InvalidLocation('%s: blank component' % url)
    if any('\0' in part for part in parts):
        raise InvalidLocation('%s: NUL character in a component' % url)
    return RbdLocation(*parts)


def parse_all(urls: tuple[str, ...] | list[str]
              ) -> tuple[list[RbdLocation], list[str]]:
    """(valid RBD locations in order, reasons for the invalid ones).

    Locations of other schemes are ignored: they belong to other backends.
    """
    found: list[RbdLocation] = []
    rejected: list[str] = []
    for url in urls:
        if not is_rbd(url):
            continue
        try:
            location = parse(url)
        except InvalidLocation as exc:
            rejected.append(str(exc))
            continue
        if location not in found:
            found.append(location)
    return found, rejected
