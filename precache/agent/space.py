"""Space and writability of the cache, in the words an operator needs.

A failed write into the cache names the cache directory (never the
source the bytes came from), and for a full file system what the image
needs and what was free, in GiB/MiB and in bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os

from precache import exception


def human_size(count: int) -> str:
    """``1.5 GiB (1610612736 bytes)``: readable, and exact for scripts."""
    for unit, scale in (('GiB', 1024 ** 3), ('MiB', 1024 ** 2),
                        ('KiB', 1024)):
        if count >= scale:
            return '%.1f %s (%d bytes)' % (count / scale, unit, count)
    return '%d bytes' % count


def free_bytes(directory: str) -> int | None:
    """Bytes an unprivileged writer may still use there (``df``'s Avail)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def no_space_reason(directory: str, needed: int | None,
                    free: int | None) -> str:
    free_text = human_size(free) if free is not None else 'unknown'
    if needed is None:
        return 'not enough space in %s: need more than the %s free' % (
            directory, free_text)
    return 'not enough space in %s: need %s, free %s' % (
        directory, human_size(needed), free_text)


def write_error(image_id: str, path: str, exc: OSError,
                needed: int | None = None) -> exception.CacheStoreError:
    """Our error for a failed write of ``path``, a file of the cache.

    It names the cache directory, never the source; for a full file
    system, what the image needs and what was free for it (the blocks of
    the partial file count as free: they are released when it is
    discarded).
    """
    directory = os.path.dirname(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(directory)
        if free is not None:
            with contextlib.suppress(OSError):
                free += os.stat(path).st_blocks * 512
        reason = no_space_reason(directory, needed, free)
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = not_writable_reason(directory, exc.errno)
    else:
        reason = 'writing %s: %s' % (path, exc.strerror or exc)
    return exception.CacheStoreError(image=image_id, reason=reason)


def not_writable_reason(directory: str, code: int,
                        what: str = 'cache directory') -> str:
    """``cache directory /x is not writable (read-only file system)``."""
    return '%s %s is not writable (%s)' % (what, directory,
                                           os.strerror(code).lower())
