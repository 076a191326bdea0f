"""Backend ``file``: images that are files on this host (or its mounts).

It serves locations that are absolute paths or ``file://`` URLs: the
all-in-one mode's image folder, or a Glance filesystem store shared over
NFS.
"""

from __future__ import annotations

import os
import urllib.parse

from precache import exception, objects
from precache.agent.backends import base
from precache.agent.stores.base import Sink
from precache.agent.stream import VerifyingWriter
from precache.conf import CONF


def local_path(location: str) -> str | None:
    """The local path of a ``file://`` URL or absolute path, else None."""
    if location.startswith('/'):
        return location
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == 'file' and parsed.netloc in ('', 'localhost'):
        return urllib.parse.unquote(parsed.path)
    return None


class FileBackend(base.Backend):
    name = 'file'
    method = objects.Method.FILE

    def _source(self, image: objects.ImageSpec) -> str | None:
        for location in image.locations:
            path = local_path(location)
            if path and os.path.isfile(path):
                return path
        return None

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        if self._source(image):
            return None
        return 'no readable file location'

    def fetch(self, image: objects.ImageSpec, sink: Sink) -> int:
        source = self._source(image)
        if source is None:
            raise exception.ImageFetchFailed(
                image=image.id, reason='no readable file location')
        chunk_size = CONF.agent.chunk_size * 1024
        writer = VerifyingWriter(image, sink,
                                 CONF.agent.download_rate_limit)
        try:
            with open(source, 'rb', buffering=0) as src:
                buffer = bytearray(chunk_size)
                view = memoryview(buffer)
                while count := src.readinto(buffer):
                    writer.write(buffer if count == chunk_size
                                 else view[:count])
        except OSError as exc:
            writer.abort()
            raise exception.ImageFetchFailed(
                image=image.id, reason='reading %s: %s' % (source, exc)
            ) from exc
        except exception.PrecacheException:
            writer.abort()
            raise
        return writer.finish()
