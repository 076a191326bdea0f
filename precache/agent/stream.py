"""Write a stream of image bytes to a temporary file, verifying as it goes.

One pass does everything Nova does in several: the hash is computed while
the bytes arrive, zero chunks become holes (so a sparse image stays
sparse), the size is checked, and the file is fsynced before anyone may
rename it into the cache.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from precache import exception, objects

_ZEROS = bytes(64 * 1024 * 1024)


def expected_digest(image: objects.ImageSpec) -> tuple[str, str] | None:
    """(algorithm, hex digest) to check, strongest first, as glanceclient."""
    if image.os_hash_algo and image.os_hash_value:
        if image.os_hash_algo in hashlib.algorithms_available:
            return image.os_hash_algo, image.os_hash_value.lower()
    if image.checksum:
        return 'md5', image.checksum.lower()
    return None


class RateLimiter:
    """Sleeps so the average rate stays under ``kib_per_s`` (0: no limit)."""

    def __init__(self, kib_per_s: int) -> None:
        self.bytes_per_s = kib_per_s * 1024
        self.start = time.monotonic()
        self.sent = 0

    def consumed(self, count: int) -> None:
        if not self.bytes_per_s:
            return
        self.sent += count
        ahead = self.sent / self.bytes_per_s - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


class VerifyingWriter:
    """Sequential writer of one image into ``path``; see module doc."""

    def __init__(self, image: objects.ImageSpec, path: str,
                 rate_limit_kib: int = 0) -> None:
        self.image = image
        self.path = path
        self.written = 0
        digest = expected_digest(image)
        self._expected = digest[1] if digest else None
        self._algorithm = digest[0] if digest else None
        self._hash: Any = hashlib.new(digest[0]) if digest else None
        self._limiter = RateLimiter(rate_limit_kib)
        self._file = open(path, 'wb')  # noqa: SIM115 - closed in finish()

    @property
    def verified_with(self) -> str | None:
        return self._algorithm

    def write(self, chunk: bytes | memoryview) -> None:
        size = len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)
        if size <= len(_ZEROS) and chunk == _ZEROS[:size]:
            self._file.seek(size, os.SEEK_CUR)
        else:
            self._file.write(chunk)
        self.written += size
        if self.image.size is not None and self.written > self.image.size:
            raise exception.ImageVerificationFailed(
                image=self.image.id,
                reason='more than the expected %d bytes' % self.image.size)
        self._limiter.consumed(size)

    def finish(self) -> int:
        """Check size and hash, fsync, close; return the byte count."""
        try:
            self._file.truncate(self.written)
            if self.image.size is not None and \
                    self.written != self.image.size:
                raise exception.ImageVerificationFailed(
                    image=self.image.id,
                    reason='got %d bytes, expected %d' % (self.written,
                                                          self.image.size))
            if self._hash is not None:
                found = self._hash.hexdigest()
                if found != self._expected:
                    raise exception.ImageVerificationFailed(
                        image=self.image.id,
                        reason='%s mismatch: got %s, expected %s' % (
                            self._algorithm, found, self._expected))
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        return self.written

    def abort(self) -> None:
        self._file.close()
