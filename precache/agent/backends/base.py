"""The interface every image backend implements."""

from __future__ import annotations

import abc
from typing import Any

from precache import objects


class Backend(abc.ABC):
    """Fetches the bytes of an image into a temporary file of a store."""

    #: Name in ``[agent] enabled_backends`` (the entry point name).
    name: str
    #: Recorded in the result of every image this backend fetched.
    method: objects.Method
    #: The kinds of cache store (``store.kind``) it can fill. For ``file``
    #: the target of :meth:`fetch` is a temporary file's path; for other
    #: kinds it is what the store's ``temp_path()`` returns.
    store_kinds: tuple[str, ...] = ('file',)

    def bind(self, store: Any) -> None:  # noqa: B027 - optional hook
        """Called once with the store this backend will fill (before any
        other call); backends that depend on the store keep it."""

    @abc.abstractmethod
    def unsupported_reason(self, image: objects.ImageSpec) -> str | None:
        """``None`` when this backend can serve ``image``, else why not."""

    @abc.abstractmethod
    def fetch(self, image: objects.ImageSpec, dest_path: str) -> int:
        """Write the whole image to ``dest_path``, verified and fsynced.

        :returns: the number of bytes of the image.
        :raises: precache.exception.BackendError on any failure; the
            caller removes ``dest_path``.
        """
