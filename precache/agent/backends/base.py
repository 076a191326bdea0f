"""The interface every image backend implements."""

from __future__ import annotations

import abc

from precache import objects
from precache.agent.stores.base import Sink, Store, StoreKind


class Backend(abc.ABC):
    """Fetches the bytes of an image into the sink of a store."""

    #: Name in ``[agent] enabled_backends`` (the entry point name).
    name: str
    #: Recorded in the result of every image this backend fetched.
    method: objects.Method
    #: The kinds of cache store (``Store.kind``) it can fill.
    store_kinds: tuple[StoreKind, ...] = (StoreKind.FILE,)

    def bind(self, store: Store) -> None:  # noqa: B027 - optional hook
        """Called once with the store this backend will fill (before any
        other call); backends that ask the store questions keep it."""

    @abc.abstractmethod
    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        """``None`` when this backend can serve ``image``, else why not."""

    @abc.abstractmethod
    def fetch(self, image: objects.ImageSpec, sink: Sink) -> int:
        """Write the whole image into ``sink``, verified and durable.

        :returns: the number of bytes of the image.
        :raises: precache.exception.BackendError on any failure; the
            caller discards the sink.
        """
