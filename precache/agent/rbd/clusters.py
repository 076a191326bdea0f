"""Connections to the configured Ceph clusters, matched to locations by fsid.

One ``rados.Rados`` per cluster and process, made on first use and shared
by every thread (librados is thread-safe and reconnects by itself), unlike
Nova's connection per operation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from precache import exception
from precache.agent import rbd as rbd_mod
from precache.conf import CONF
from precache.conf import ceph as ceph_conf

LOG = logging.getLogger(__name__)


class Cluster:
    """One configured cluster: ``[ceph:<name>]``."""

    def __init__(self, name: str, conf_file: str, user: str | None = None,
                 keyring: str | None = None,
                 fsid: str | None = None) -> None:
        self.name = name
        self.conf_file = conf_file
        self.user = user
        self.keyring = keyring
        self.configured_fsid = fsid.lower() if fsid else None
        self._fsid: str | None = None
        self._client: Any = None
        self._users: dict[int, int] = {}   # id(client) → ioctx() in use
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return 'Cluster(%s, %s)' % (self.name, self.conf_file)

    def describe(self) -> str:
        return 'cluster %s (%s%s)' % (
            self.name, self.conf_file,
            ', user %s' % self.user if self.user else '')

    @property
    def known_fsid(self) -> str | None:
        """The fsid, when known without connecting."""
        return self.configured_fsid or self._fsid

    def fsid(self) -> str:
        """The fsid; connects when it is not configured."""
        known = self.known_fsid
        if known:
            return known
        self.client()
        assert self._fsid is not None
        return self._fsid

    def client(self) -> Any:
        """The connected ``rados.Rados``; raises BackendError."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        reason = rbd_mod.unavailable_reason()
        if reason:
            raise exception.BackendError(reason=reason)
        rados = rbd_mod.rados
        timeout = CONF.ceph.connect_timeout
        options = {'rados_osd_op_timeout': str(CONF.ceph.op_timeout),
                   'rados_mon_op_timeout': str(CONF.ceph.op_timeout),
                   'client_mount_timeout': str(timeout),
                   # NOTE: no admin socket or log file per agent thread.
                   'admin_socket': '', 'log_file': ''}
        if self.keyring:
            options['keyring'] = self.keyring
        doing = 'connecting to %s' % self.describe()
        with rbd_mod.translate_rbd_errors(None, doing):
            client = rados.Rados(conffile=self.conf_file,
                                 rados_id=self.user or None, conf=options)
            try:
                client.connect(timeout=timeout)
                fsid = client.get_fsid().lower()
            except BaseException:
                client.shutdown()
                raise
        if self.configured_fsid and fsid != self.configured_fsid:
            client.shutdown()
            raise exception.BackendError(reason=(
                '%s answered with fsid %s, but [ceph:%s] fsid is %s'
                % (self.describe(), fsid, self.name, self.configured_fsid)))
        self._fsid = fsid
        LOG.info('Connected to Ceph %s, fsid %s', self.describe(), fsid)
        return client

    @contextlib.contextmanager
    def ioctx(self, pool: str) -> Iterator[Any]:
        """An I/O context on ``pool``; errors are left to the caller.

        A timeout inside drops the connection for the next users: measured
        here, a librados client whose only OSD was killed and restarted
        kept timing out (for minutes) while a new client worked at once.
        Users of the old connection finish first; the last one closes it.
        """
        client = self.client()
        with self._lock:
            self._users[id(client)] = self._users.get(id(client), 0) + 1
        try:
            ioctx = client.open_ioctx(pool)
            try:
                yield ioctx
            finally:
                ioctx.close()
        except Exception as exc:
            if rbd_mod.is_timeout(exc):
                self._retire(client)
            raise
        finally:
            self._release(client)

    def _retire(self, client: Any) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
                LOG.warning('Ceph %s timed out; reconnecting for the next '
                            'operation', self.describe())

    def _release(self, client: Any) -> None:
        with self._lock:
            count = self._users[id(client)] = self._users[id(client)] - 1
            if count or client is self._client:
                return
            del self._users[id(client)]
        client.shutdown()

    def shutdown(self) -> None:
        """Close the connection (tests, exit); in-flight users keep it."""
        with self._lock:
            client, self._client = self._client, None
            busy = client is not None and self._users.get(id(client))
        if client is not None and not busy:
            client.shutdown()


_clusters: dict[tuple[str, ...], Cluster] = {}
_clusters_lock = threading.Lock()


def names() -> list[str]:
    """The configured clusters: the main one (if any), then the others."""
    found = [ceph_conf.DEFAULT_CLUSTER] if CONF.ceph.conf_file else []
    return found + [n for n in CONF.ceph.other_clusters or ()
                    if n != ceph_conf.DEFAULT_CLUSTER]


def get(name: str) -> Cluster:
    """The cluster ``name`` as configured now (shared per process)."""
    if name not in names():
        raise exception.BackendError(reason=(
            'no Ceph cluster %s: set [ceph] conf_file (the main cluster) '
            'or list it in [ceph] other_clusters' % name
            if name == ceph_conf.DEFAULT_CLUSTER else
            'cluster %s is not in [ceph] other_clusters' % name))
    options = ceph_conf.cluster_group(CONF, name)
    if not options.conf_file:
        raise exception.BackendError(
            reason='[ceph:%s] conf_file is not set' % name)
    key = (name, options.conf_file, options.user or '',
           options.keyring or '', options.fsid or '')
    with _clusters_lock:
        cluster = _clusters.get(key)
        if cluster is None:
            cluster = _clusters[key] = Cluster(
                name, options.conf_file, options.user, options.keyring,
                options.fsid)
        return cluster


def configured() -> list[Cluster]:
    found = []
    for name in names():
        try:
            found.append(get(name))
        except exception.BackendError as exc:
            LOG.warning('Ceph cluster %s is not usable: %s', name, exc)
    return found


def match(fsid: str) -> tuple[Cluster | None, list[str]]:
    """The configured cluster with this fsid, and why others were not.

    Clusters whose fsid is configured are compared without connecting;
    the others are connected to (once) to learn theirs.
    """
    fsid = fsid.lower()
    problems: list[str] = []
    clusters = configured()
    for cluster in clusters:
        if cluster.known_fsid == fsid:
            return cluster, problems
    for cluster in clusters:
        if cluster.known_fsid:
            continue
        try:
            if cluster.fsid() == fsid:
                return cluster, problems
        except exception.BackendError as exc:
            problems.append(str(exc.kwargs.get('reason', exc)))
    return None, problems


def describe_configured() -> str:
    clusters = configured()
    if not clusters:
        return 'none configured ([ceph] conf_file, other_clusters)'
    return ', '.join('%s (fsid %s)' % (c.name, c.known_fsid or 'unknown')
                     for c in clusters)


def shutdown_all() -> None:
    """Close every connection (tests, agent exit)."""
    with _clusters_lock:
        clusters = list(_clusters.values())
        _clusters.clear()
    for cluster in clusters:
        cluster.shutdown()
