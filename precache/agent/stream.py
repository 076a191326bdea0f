"""Write a stream of image bytes to a temporary file, verifying as it goes.

One pass does everything Nova does in several: the hash is computed while
the bytes arrive, zero runs become holes (so a sparse image stays sparse),
the size is checked, and the file is fsynced before anyone may rename it
into the cache.

The hash runs in a thread of its own, a chunk or two behind the bytes
(hashlib releases the GIL on buffers over 2 KiB), so receiving, writing
and hashing overlap: done in turn in one thread, a verified download took
the time of the unverified one plus that of the hash.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import time
from concurrent import futures

from precache import exception, objects
from precache.agent.sparse import ZERO_BLOCK, nonzero_runs
from precache.agent.stores.base import Sink, SparseFileSink

__all__ = ['ZERO_BLOCK', 'nonzero_runs', 'expected_digest', 'RateLimiter',
           'VerifyingWriter']


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


class OrderedHash:
    """A hash fed, in order, by a thread of its own; at most ``depth``
    chunks wait for it (each holds its buffer, so memory stays bounded).
    """

    def __init__(self, algorithm: str, depth: int = 2) -> None:
        self._hash = hashlib.new(algorithm)
        self._depth = depth
        self._pending: collections.deque[futures.Future] = \
            collections.deque()
        self._pool = futures.ThreadPoolExecutor(
            1, thread_name_prefix='hash')

    def update(self, data: bytes) -> None:
        """Hash ``data`` (which must not change afterwards) soon."""
        self._pending.append(self._pool.submit(self._hash.update, data))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def hexdigest(self) -> str:
        while self._pending:
            self._pending.popleft().result()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the thread (idempotent); the digest is lost."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _PathSink(SparseFileSink):
    """A plain file as a sink (callers that give a path, not a store's
    sink: tools and benchmarks)."""

    def commit(self, size: int) -> int:
        self.close()
        return size

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class VerifyingWriter:
    """Sequential writer of one image into a store's sink (or a file
    path); see the module doc.

    Failures to write (full disk, read-only file system) raise
    CacheStoreError naming the cache, never OSError: a backend must not
    take them for a failure of its source. Each writer starts the sink
    over (:meth:`Sink.begin`): a download that restarts makes a new one.
    """

    #: Hole granularity of what is handed to the sink (kept for
    #: bench/glance_http, which compares whole chunks with 64 KiB blocks).
    zero_block = ZERO_BLOCK

    def __init__(self, image: objects.ImageSpec, sink: Sink | str,
                 rate_limit_kib: int = 0) -> None:
        self.image = image
        self.sink = _PathSink(image, sink) if isinstance(sink, str) \
            else sink
        self.written = 0
        digest = expected_digest(image)
        self._expected = digest[1] if digest else None
        self._algorithm = digest[0] if digest else None
        self._hash = OrderedHash(digest[0]) if digest else None
        self._limiter = RateLimiter(rate_limit_kib)
        self.sink.begin(image.size)
        self._open = True

    @property
    def verified_with(self) -> str | None:
        return self._algorithm

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        # NOTE: comparing a memoryview is byte by byte (~50 ms per 4 MiB
        # of zeros, measured); a copy to bytes is ~2 ms. A bytearray is
        # copied too: its owner may refill it while it is being hashed.
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        size = len(data)
        if self._hash is not None:
            self._hash.update(data)
        if self.image.size is not None and \
                self.written + size > self.image.size:
            raise exception.ImageVerificationFailed(
                image=self.image.id,
                reason='more than the expected %d bytes' % self.image.size)
        assert self._open
        runs = nonzero_runs(data, self.zero_block)
        if runs == [(0, size)]:
            self.sink.write(self.written, bytes(data))
        else:
            view = memoryview(data)
            for start, end in runs:
                self.sink.write(self.written + start,
                                view[start:end].tobytes())
        self.written += size
        self._limiter.consumed(size)

    def finish(self) -> int:
        """Check size and hash, make durable, close; the byte count."""
        assert self._open
        try:
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
            self.sink.finish(self.written)
        finally:
            self.abort()
        return self.written

    def abort(self) -> None:
        if self._open:
            self._open = False
            if self._hash is not None:
                self._hash.close()
            self.sink.close()
