"""Copy an RBD snapshot somewhere, sparse and verified, reads in flight.

The pipeline, for an image of ``size`` bytes:

1. ``diff_iterate`` lists the allocated extents (only those are read);
   they are cut into reads of at most ``chunk`` bytes at chunk-aligned
   offsets.
2. A pool of ``concurrency`` threads runs the reads (``Image.read``
   releases the GIL) in logical order, and each thread writes what it read
   straight to its offset in the sink, skipping all-zero blocks, so holes
   and zero runs stay holes (the sink writes one call at a time: see
   :mod:`precache.agent.sparse`).
3. The calling thread hashes the image's *logical* bytes in order while the
   reads run ahead: each read's data as soon as it is read (its write may
   still be running), and the gaps between reads from one shared buffer of
   zeros. At most ``concurrency + 2`` buffers exist at once, read or still
   being written, so memory does not grow with the image.

Measured on 2 cores, 2 GiB image: 2 MiB reads, 8 in flight, read and
write at the speed of the OSD; verified, the sha512 thread is the limit
and 4 reads in flight keep it fed. More buffers only raise the agent's
peak RSS (glibc keeps freed read buffers in per-thread arenas: 8 readers
of 4 MiB peaked at ~215 MB RSS, 8 of 2 MiB at ~140 MB, imports included),
hence a ``malloc_trim`` every TRIM_EVERY bytes. A fixed low mmap threshold
(every buffer returned at once) cut the peak too but cost ~1 s of page
faults per GiB: not worth it.

Errors of librados/librbd and of the sink are left to the caller (see
:func:`precache.agent.rbd.translate_rbd_errors`).
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, Protocol

from precache.agent.rbd import Cancelled
from precache.agent.sparse import ZERO_BLOCK, nonzero_runs

__all__ = ['ZERO_BLOCK', 'nonzero_runs', 'copy', 'Sink']

#: Shared zeros for hashing holes (read-only; its pages are never touched
#: by a write, so they cost no memory).
_HASH_ZEROS = memoryview(bytes(8 * 1024 * 1024))


def allocated_extents(image: Any, size: int) -> list[tuple[int, int]]:
    """Sorted, merged ``(offset, length)`` of the allocated extents."""
    found: list[tuple[int, int]] = []

    def collect(offset: int, length: int, exists: bool) -> int:
        if exists and length:
            found.append((offset, length))
        return 0

    image.diff_iterate(0, size, None, collect)
    found.sort()
    merged: list[tuple[int, int]] = []
    for offset, length in found:
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            last_offset, last_length = merged[-1]
            end = max(last_offset + last_length, offset + length)
            merged[-1] = (last_offset, end - last_offset)
        else:
            merged.append((offset, length))
    return merged


def plan_reads(extents: list[tuple[int, int]], size: int,
               chunk: int) -> list[tuple[int, int]]:
    """Cut extents into reads that never cross a ``chunk`` boundary."""
    reads = []
    for offset, length in extents:
        end = min(offset + length, size)
        while offset < end:
            stop = min(end, (offset // chunk + 1) * chunk)
            reads.append((offset, stop - offset))
            offset = stop
    return reads


class Sink(Protocol):
    """What :func:`copy` writes into (a store's sink, a sparse file)."""

    def write(self, offset: int, data: bytes) -> int:
        """Write the non-zero runs of ``data`` at ``offset``; bytes
        written."""

    def finish(self, size: int) -> None:
        """Make the result ``size`` bytes long and durable."""

    def close(self) -> None:
        """Release resources (idempotent; after finish or on failure)."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6'
                           ).malloc_trim
    except (OSError, AttributeError):   # not glibc
        return None


_MALLOC_TRIM = _malloc_trim()
#: Give freed read buffers back to the system after this many bytes read:
#: glibc keeps them in per-thread arenas otherwise (measured, 4 GiB export,
#: 8 reads in flight, every 256 MiB: peak RSS 151 MB without, 130 MB with;
#: same speed).
TRIM_EVERY = 128 * 1024 * 1024


@dataclasses.dataclass
class Stats:
    size: int = 0           # logical bytes
    allocated: int = 0      # bytes read from the source
    written: int = 0        # bytes written to the sink (non-zero data)
    digest: str | None = None
    seconds: float = 0.0


def copy(source: Any, size: int, sink: Sink, *,
         algorithm: str | None = None, concurrency: int = 8,
         chunk: int = 4 * 1024 * 1024,
         on_progress: Callable[[int], None] | None = None,
         should_stop: Callable[[], str | None] | None = None) -> Stats:
    """Copy the open snapshot ``source`` (``size`` bytes) into ``sink``.

    :param algorithm: hash of the logical bytes to compute (hashlib name);
        ``Stats.digest`` is its hex digest. ``None``: no hashing.
    :param on_progress: called in logical order with each read's length
        (e.g. a rate limiter's ``consumed``).
    :param should_stop: polled between reads; a non-None return stops the
        copy with :class:`Cancelled` carrying that reason.
    :raises: whatever the source or sink raise; the first error stops the
        copy (reads not yet started are cancelled).
    """
    start = time.monotonic()
    stats = Stats(size=size)
    reads = plan_reads(allocated_extents(source, size), size, chunk)
    hasher = hashlib.new(algorithm) if algorithm else None
    written = [0]
    written_lock = threading.Lock()

    def read_and_write(offset: int, length: int,
                       ready: futures.Future) -> None:
        # NOTE: the data is handed to the hash as soon as it is read, not
        # after it is written: a slow write must not stall the hash.
        try:
            data = source.read(offset, length)
            if len(data) != length:
                raise OSError(0, 'short read at offset %d: %d of %d bytes'
                              % (offset, len(data), length))
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(data if hasher is not None else None)
        count = sink.write(offset, data)
        with written_lock:
            written[0] += count

    def hash_zeros(count: int) -> None:
        assert hasher is not None
        while count > 0:
            step = min(count, len(_HASH_ZEROS))
            hasher.update(_HASH_ZEROS[:step])
            count -= step

    hashed = since_trim = 0
    pending = iter(reads)
    #: Reads in logical order: (offset, length, data read, task).
    window: collections.deque[tuple[int, int, futures.Future,
                                    futures.Future]] = collections.deque()
    #: Tasks whose data was taken and may still be writing; they count in
    #: the window's bound (each holds its buffer).
    writing: collections.deque[futures.Future] = collections.deque()
    bound = concurrency + 2
    with futures.ThreadPoolExecutor(
            concurrency, thread_name_prefix='rbd-copy') as pool:

        def submit() -> None:
            while len(window) + len(writing) < bound:
                nxt = next(pending, None)
                if nxt is None:
                    return
                ready: futures.Future = futures.Future()
                window.append((*nxt, ready,
                               pool.submit(read_and_write, *nxt, ready)))

        def reap() -> None:
            """Raise the error of a finished write, if any."""
            while writing and writing[0].done():
                writing.popleft().result()

        try:
            submit()
            while window or writing:
                if not window:
                    # every buffer is being written: wait for the oldest
                    writing.popleft().result()
                    submit()
                    continue
                offset, length, ready, task = window.popleft()
                data = ready.result()
                writing.append(task)
                if should_stop is not None:
                    reason = should_stop()
                    if reason:
                        raise Cancelled(reason)
                if hasher is not None:
                    hash_zeros(offset - hashed)
                    hasher.update(data)
                hashed = offset + length
                stats.allocated += length
                del data
                reap()
                submit()
                if on_progress is not None:
                    on_progress(length)
                since_trim += length
                if since_trim >= TRIM_EVERY and _MALLOC_TRIM is not None:
                    since_trim = 0
                    _MALLOC_TRIM(0)
        except BaseException:
            for _offset, _length, _ready, task in window:
                task.cancel()
            raise
    if hasher is not None:
        hash_zeros(size - hashed)
        stats.digest = hasher.hexdigest()
    sink.finish(size)
    stats.written = written[0]
    stats.seconds = time.monotonic() - start
    return stats
