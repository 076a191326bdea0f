"""The contract of a cache store, and of the sink a backend writes into.

A store is where a host's resident images live (Nova's ``_base`` folder,
an RBD pool). The cache asks it whether an image is resident, touches
it, and otherwise opens a :class:`Sink`: the image's temporary home,
which the chosen backend fills and the cache then commits (atomically,
under the image's final name) or discards. Backends write into a sink
without knowing which store made it; what only some stores can do (a
copy-on-write clone) is a question asked through this contract, never
a check of the store's class.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import socket

from precache import exception, objects
from precache.agent.rbd.locations import RbdLocation
from precache.agent.sparse import SparseFile
from precache.conf import CONF


class StoreKind(enum.StrEnum):
    """The value of ``[agent] store``, reported in heartbeats."""

    FILE = 'file'
    RBD = 'rbd'


class Sink(abc.ABC):
    """One image on its way into a store, under a temporary name.

    A backend calls :meth:`begin`, then :meth:`write` (from several
    threads if it likes) and :meth:`finish`, or :meth:`clone_from` when
    the store can clone; :meth:`begin` again starts over. The cache then
    calls :meth:`commit` or, on any failure, :meth:`discard`.
    """

    def __init__(self, image: objects.ImageSpec) -> None:
        self.image = image
        #: What the backend wants the image's result to say about a fetch
        #: that worked (e.g. a download resumed or started over); the
        #: cache puts it in the result's reason.
        self.notes: list[str] = []

    @abc.abstractmethod
    def begin(self, size: int | None) -> None:
        """Start (or start again) from nothing: an empty temporary of
        ``size`` bytes (None: not known in advance)."""

    @abc.abstractmethod
    def write(self, offset: int, data: bytes) -> int:
        """Write the non-zero runs of ``data`` at ``offset`` (zero runs
        stay holes); returns the bytes written.

        :raises: CacheStoreError when the store cannot take them (full,
            read-only), naming the store, never the source.
        """

    @abc.abstractmethod
    def finish(self, size: int) -> None:
        """Make the temporary exactly ``size`` bytes long and durable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what writing holds (idempotent); the data stays."""

    def clone_from(self, location: RbdLocation) -> int:
        """Make the temporary a copy-on-write clone of ``location``, one
        of :meth:`Store.clone_sources`; returns the clone's size."""
        raise exception.CacheStoreError(
            image=self.image.id, reason='%s cannot hold a clone' % self)

    def interrupted(self) -> str | None:
        """Why writing must stop now (e.g. the store lost the image's
        lock to another agent), or None."""
        return None

    @abc.abstractmethod
    def commit(self, size: int) -> int:
        """Install the verified temporary under the image's final name,
        atomically; returns the bytes the store now holds (``size``, or
        the raw size of an image the store converted)."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Remove the temporary and what it left; never raises."""


class SparseFileSink(Sink):
    """A sink that is a file written with holes at ``path``: the file
    store's, and a plain path's (tools and benchmarks)."""

    def __init__(self, image: objects.ImageSpec, path: str) -> None:
        super().__init__(image)
        self.path = path
        self._file: SparseFile | None = None

    def __str__(self) -> str:
        return self.path

    def begin(self, size: int | None) -> None:
        self.close()
        self._file = SparseFile(self.path, self.image)

    def write(self, offset: int, data: bytes) -> int:
        assert self._file is not None
        return self._file.write(offset, data)

    def finish(self, size: int) -> None:
        assert self._file is not None
        self._file.finish(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Store(abc.ABC):
    """Where the resident images of one host live; see the module doc."""

    #: Which store this is (``[agent] store``); backends declare the
    #: kinds they can fill (``Backend.store_kinds``).
    kind: StoreKind

    def __init__(self, host: str | None = None) -> None:
        self.host = host or CONF.host or socket.gethostname()

    @abc.abstractmethod
    def __str__(self) -> str:
        """Where the cache lives, for logs (a folder, ``rbd:<cluster>/
        <pool>``)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, object]:
        """What the agent reports about this store (``kind`` first)."""

    def free_bytes(self) -> int | None:
        """Bytes still free for images, None when the store cannot say."""
        return None

    @abc.abstractmethod
    def usage(self) -> tuple[int | None, int | None]:
        """(bytes allocated, resident images), from one cheap listing;
        (None, None) when unknown."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Get ready at agent start; a failure is logged, not raised (each
        image then fails with the reason, and the agent still answers)."""

    @abc.abstractmethod
    def remove_stale_temp_files(self) -> list[str]:
        """Remove temporaries left by agents that died mid-fetch, never
        one still being written; returns what was removed."""

    @abc.abstractmethod
    def lock(self, image_id: str) -> contextlib.AbstractContextManager:
        """The image's lock, shared with every writer of this store."""

    def check_writable(self, image: objects.ImageSpec) -> None:  # noqa: B027
        """Fail at once, naming the store, when nothing can be written."""

    def check_room(self, image: objects.ImageSpec) -> None:  # noqa: B027
        """Fail at once, writing nothing, when ``image`` cannot fit."""

    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        """Why this store cannot hold ``image`` as its source has it (a
        backend that copies bytes asks), or None."""
        return None

    def clone_sources(self, locations: list[RbdLocation]
                      ) -> tuple[list[RbdLocation], str | None]:
        """Those of ``locations`` a sink of this store can clone
        (:meth:`Sink.clone_from`) and, when there is none, why not."""
        return [], 'needs the rbd store'

    @abc.abstractmethod
    def is_resident(self, image: objects.ImageSpec) -> bool:
        """Complete under its final name (a truncated one is not)."""

    @abc.abstractmethod
    def touch(self, image: objects.ImageSpec) -> None:
        """Restart the cache expiry clock of a resident image."""

    @abc.abstractmethod
    def open_sink(self, image: objects.ImageSpec) -> Sink:
        """A new temporary for ``image``, leftovers of earlier fetches of
        it removed (the caller holds the image's lock)."""
