"""The interface every image backend implements."""

from __future__ import annotations

import abc

from precache import objects


class Backend(abc.ABC):
    """Fetches the bytes of an image into a temporary file of a store."""

    #: Name in ``[agent] enabled_backends`` (the entry point name).
    name: str
    #: Recorded in the result of every image this backend fetched.
    method: objects.Method

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
