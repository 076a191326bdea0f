"""Backends ``rbd-clone`` and ``rbd-export``: images that live in Ceph.

Both serve Glance locations ``rbd://<fsid>/<pool>/<image>/<snapshot>``
from the configured cluster with that fsid (``[ceph] clusters``).

- ``rbd-clone`` fills a store that can clone (the rbd store): when the
  store says a location is on its own cluster and the image is raw, a
  copy-on-write clone of Glance's snapshot into the store's sink, made in
  milliseconds whatever the size. Nothing is read, so only the size is
  checked (the snapshot is immutable, and Glance hashed it when it was
  uploaded).
- ``rbd-export`` fills the file store (Nova's ``_base``) or the rbd store
  of another cluster: the allocated extents of the snapshot are read with
  several reads in flight and written at their offsets (holes stay holes),
  while the whole logical image is hashed and checked against Glance's
  ``os_hash_value`` (else ``checksum``). It writes into the store's sink,
  whichever store that is. See :mod:`precache.agent.rbd.transfer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from precache import exception, objects
from precache.agent import rbd as rbd_mod
from precache.agent import stream
from precache.agent.backends import base
from precache.agent.rbd import clusters, locations, transfer
from precache.agent.stores.base import Sink, Store, StoreKind
from precache.conf import CONF

LOG = logging.getLogger(__name__)

RAW_FORMATS = (None, 'raw')
#: Reads in flight while hashing: the hash is the limit; more reads would
#: only hold more buffers (see precache.agent.rbd.transfer).
VERIFY_CONCURRENCY = 4


class _RbdBackend(base.Backend):
    def __init__(self) -> None:
        self._store: Store | None = None

    def bind(self, store: Store) -> None:
        self._store = store

    @property
    def store(self) -> Store:
        assert self._store is not None, 'bind() the store first'
        return self._store

    def _common_reason(self, image: objects.ImageSpec) -> str | None:
        """Why neither RBD backend can even try, or None."""
        reason = rbd_mod.unavailable_reason()
        if reason:
            return reason
        if not clusters.names():
            return ('no Ceph cluster configured ([ceph] conf_file, '
                    'other_clusters)')
        if not any(locations.is_rbd(url) for url in image.locations):
            return 'no rbd:// location'
        return None

    def _sources(self, image: objects.ImageSpec
                 ) -> list[tuple[clusters.Cluster, locations.RbdLocation]]:
        """The usable RBD locations, each with its cluster, in order.

        :raises: ImageFetchFailed saying why none is usable (malformed,
            or on no configured cluster).
        """
        found, problems = locations.parse_all(image.locations)
        sources = []
        for location in found:
            cluster, why_not = clusters.match(location.fsid)
            if cluster is None:
                problems.append(
                    '%s is on cluster %s, not a configured one (%s)%s' % (
                        location, location.fsid,
                        clusters.describe_configured(),
                        ''.join('; ' + p for p in why_not)))
                continue
            sources.append((cluster, location))
        if not sources:
            raise exception.ImageFetchFailed(
                image=image.id, reason='; '.join(problems) or
                'no rbd:// location')
        return sources

    @staticmethod
    def _check_size(image: objects.ImageSpec, location: Any,
                    size: int) -> None:
        if image.size is not None and image.disk_format in RAW_FORMATS \
                and size != image.size:
            raise exception.ImageVerificationFailed(
                image=image.id, reason='%s has %d bytes, Glance says %d'
                % (location, size, image.size))

    def _each_source(self, image: objects.ImageSpec,
                     sources: list[tuple[Any, ...]],
                     attempt: Callable[..., int]) -> int:
        """``attempt(*source)`` for each source (its location last) until
        one works; the reasons of all failures otherwise."""
        reasons = []
        for index, source in enumerate(sources):
            try:
                return attempt(*source)
            except exception.BackendError as exc:
                if len(sources) == 1:
                    raise
                reasons.append(str(exc.kwargs.get('reason', exc)))
                LOG.warning('Image %(image)s: %(location)s failed '
                            '(%(n)d of %(count)d): %(err)s',
                            {'image': image.id, 'location': source[-1],
                             'n': index + 1, 'count': len(sources),
                             'err': exc})
        raise exception.ImageFetchFailed(image=image.id,
                                         reason='; '.join(reasons))


class RbdCloneBackend(_RbdBackend):
    """Copy-on-write clone into the rbd store; see the module doc."""

    name = 'rbd-clone'
    method = objects.Method.RBD_CLONE
    store_kinds = (StoreKind.RBD,)

    def _same_cluster(self, image: objects.ImageSpec
                      ) -> tuple[list[locations.RbdLocation], str | None]:
        found, _problems = locations.parse_all(image.locations)
        return self.store.clone_sources(found)

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        reason = self._common_reason(image)
        if reason:
            return reason
        if image.disk_format not in RAW_FORMATS:
            return ('disk_format is %s: only raw images are cloned'
                    % image.disk_format)
        return self._same_cluster(image)[1]

    def fetch(self, image: objects.ImageSpec, sink: Sink) -> int:
        same, reason = self._same_cluster(image)
        if reason:
            raise exception.ImageFetchFailed(image=image.id, reason=reason)
        return self._each_source(
            image, [(location,) for location in same],
            lambda location: self._clone(image, location, sink))

    def _clone(self, image: objects.ImageSpec,
               location: locations.RbdLocation, sink: Sink) -> int:
        with _translate(image.id, 'cloning %s' % location):
            size = sink.clone_from(location)
        # NOTE: a wrong size fails the fetch; the cache discards the clone.
        self._check_size(image, location, size)
        LOG.info('Image %(image)s: cloned %(location)s into %(target)s',
                 {'image': image.id, 'location': location,
                  'target': sink})
        return 0  # nothing was copied


class RbdExportBackend(_RbdBackend):
    """Verified sparse export; see the module doc and ``transfer``."""

    name = 'rbd-export'
    method = objects.Method.RBD_EXPORT
    store_kinds = (StoreKind.FILE, StoreKind.RBD)

    def __init__(self, verify: bool = True) -> None:
        super().__init__()
        #: Hash while exporting (always, except to measure its cost).
        self.verify = verify

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        reason = self._common_reason(image)
        if reason:
            return reason
        return self.store.unsupported_reason(image)

    def fetch(self, image: objects.ImageSpec, sink: Sink) -> int:
        # NOTE: conversion to raw, when the store wants it, is the
        # store's (its sink's commit), after the export is verified.
        sources = self._sources(image)
        return self._each_source(
            image, sources, lambda cluster, location: self._export(
                image, cluster, location, sink))

    @staticmethod
    def _check_still_there(image: objects.ImageSpec,
                           cluster: clusters.Cluster,
                           location: locations.RbdLocation) -> None:
        rbd, rados = rbd_mod.rbd, rbd_mod.rados
        with _translate(image.id, 'checking %s after the export'
                        % location):
            try:
                with cluster.ioctx(location.pool) as ioctx, \
                        rbd.Image(ioctx, location.image,
                                  snapshot=location.snapshot,
                                  read_only=True):
                    pass
            except (rbd.ImageNotFound, rados.ObjectNotFound) as exc:
                raise exception.ImageFetchFailed(
                    image=image.id, reason='%s disappeared during the '
                    'export (image or snapshot deleted?): %s'
                    % (location, exc)) from exc

    def _export(self, image: objects.ImageSpec, cluster: clusters.Cluster,
                location: locations.RbdLocation, sink: Sink) -> int:
        rbd = rbd_mod.rbd
        digest = stream.expected_digest(image) if self.verify else None
        limiter = stream.RateLimiter(CONF.agent.download_rate_limit)
        where = str(sink)
        try:
            with _translate(image.id, 'exporting %s to %s'
                            % (location, where)), \
                    cluster.ioctx(location.pool) as ioctx, \
                    rbd.Image(ioctx, location.image,
                              snapshot=location.snapshot,
                              read_only=True) as source:
                size = source.size()
                self._check_size(image, location, size)
                with _translate(image.id, 'creating %s' % where):
                    sink.begin(size)
                stats = transfer.copy(
                    source, size, sink,
                    algorithm=digest[0] if digest else None,
                    concurrency=min(CONF.ceph.export_concurrency,
                                    VERIFY_CONCURRENCY) if digest
                    else CONF.ceph.export_concurrency,
                    chunk=CONF.ceph.export_chunk_size * 1024,
                    on_progress=limiter.consumed,
                    should_stop=sink.interrupted)
        finally:
            sink.close()
        # NOTE: librbd reads a snapshot deleted mid-export as zeros, without
        # an error (measured): ask again, so the reason says what happened
        # (and an unverified export is not silently corrupt).
        self._check_still_there(image, cluster, location)
        if digest and stats.digest != digest[1]:
            raise exception.ImageVerificationFailed(
                image=image.id, reason='%s mismatch: got %s, expected %s'
                % (digest[0], stats.digest, digest[1]))
        LOG.info('Image %(image)s: exported %(location)s to %(where)s: '
                 '%(size)d bytes, %(read)d read, %(written)d written, '
                 '%(how)s, in %(s).1fs',
                 {'image': image.id, 'location': location, 'where': where,
                  'size': stats.size, 'read': stats.allocated,
                  'written': stats.written, 's': stats.seconds,
                  'how': 'verified %s' % digest[0] if digest
                  else 'not verified'})
        return stats.size


def _translate(image_id: str, doing: str) -> Any:
    return rbd_mod.translate_rbd_errors(image_id, doing)
