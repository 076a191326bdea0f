"""Ceph RBD: locations, cluster connections, the export pipeline, the store.

The Python bindings ``rados`` and ``rbd`` come with Ceph (Debian:
python3-rados, python3-rbd), not from PyPI; the agent runs without them,
and every RBD backend or store then reports itself unsupported with the
reason. librados and librbd errors become precache exceptions in exactly
one place, :func:`translate_rbd_errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

from precache import exception

_IMPORT_ERROR: str | None = None
_loaded = False
_load_lock = threading.Lock()
_rados: Any = None
_rbd: Any = None


def _load() -> None:
    """Import the bindings on first use (librados and librbd cost ~20 MB
    of RSS, which an agent without Ceph need not pay)."""
    global _loaded, _IMPORT_ERROR, _rados, _rbd
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        try:
            import rados as rados_module
            import rbd as rbd_module
        except ImportError as exc:
            _IMPORT_ERROR = str(exc)
        else:
            _rados, _rbd = rados_module, rbd_module
        _loaded = True


def __getattr__(name: str) -> Any:
    # NOTE: ``precache.agent.rbd.rbd`` and ``.rados`` from other modules.
    if name in ('rados', 'rbd'):
        _load()
        return _rados if name == 'rados' else _rbd
    raise AttributeError(name)


def unavailable_reason() -> str | None:
    """Why librbd cannot be used here, or None when it can."""
    _load()
    if _IMPORT_ERROR is not None:
        return ('the Python modules rados and rbd are not importable '
                '(python3-rados, python3-rbd): %s' % _IMPORT_ERROR)
    return None


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, 'errno', None)
    if isinstance(code, int):
        return abs(code)
    return None


def describe(exc: BaseException) -> str:
    """A short, precise text for a librados/librbd error."""
    _load()
    rados, rbd = _rados, _rbd
    code = _errno_of(exc)
    if rbd is not None and isinstance(exc, rbd.PermissionError) or \
            rados is not None and isinstance(exc, rados.PermissionError) or \
            code in (errno.EACCES, errno.EPERM):
        return 'permission denied (check the cephx caps of the user): %s' \
            % exc
    if rbd is not None and isinstance(exc, rbd.ImageNotFound) or \
            code == errno.ENOENT:
        return 'not found: %s' % exc
    if rbd is not None and isinstance(exc, rbd.Timeout) or \
            rados is not None and isinstance(exc, rados.TimedOut) or \
            code in (errno.ETIMEDOUT, errno.EINTR):
        return 'timed out (cluster or OSD unreachable?): %s' % exc
    if code in (errno.ENOSPC, errno.EDQUOT):
        return 'no space left in the pool: %s' % exc
    if code is not None:
        return '%s (%s)' % (exc, errno.errorcode.get(code, code))
    return str(exc) or type(exc).__name__


class Cancelled(Exception):
    """A copy stopped on purpose (e.g. the store lost its lock)."""


@contextlib.contextmanager
def translate_rbd_errors(image_id: str | None, doing: str,
                         error: type[exception.BackendError]
                         = exception.ImageFetchFailed) -> Iterator[None]:
    """The one place librados/librbd errors become precache errors.

    Also local OS errors (the cache's disk: ENOSPC, EIO...), a
    :class:`Cancelled` copy (→ CacheStoreError) and the image-less
    BackendError of a cluster connection (→ ``error``, naming the image).

    :param image_id: the image concerned; None: raise BackendError.
    :param doing: what was being done, e.g. ``'exporting rbd://…'``; it
        starts the reason.
    """

    def make(reason: str, kind: type[exception.BackendError] = error
             ) -> exception.BackendError:
        if image_id is None:
            return exception.BackendError(reason=reason)
        return kind(image=image_id, reason=reason)

    try:
        yield
    except exception.PrecacheException as exc:
        if type(exc) is exception.BackendError and image_id is not None:
            raise make('%s: %s' % (doing, exc.kwargs.get('reason', exc))
                       ) from exc
        raise
    except Cancelled as exc:
        raise make('%s: %s' % (doing, exc),
                   exception.CacheStoreError) from exc
    except OSError as exc:
        raise make('%s: %s' % (doing, os.strerror(exc.errno)
                               if exc.errno else exc)) from exc
    except Exception as exc:
        if not _is_ceph_error(exc):
            raise
        raise make('%s: %s' % (doing, describe(exc))) from exc


def is_timeout(exc: BaseException) -> bool:
    """A librados/librbd timeout (ETIMEDOUT)."""
    _load()
    return (_rbd is not None and isinstance(exc, _rbd.Timeout)) or \
        (_rados is not None and isinstance(exc, _rados.TimedOut)) or \
        (_is_ceph_error(exc) and _errno_of(exc) == errno.ETIMEDOUT)


def _is_ceph_error(exc: Any) -> bool:
    _load()
    return (_rbd is not None and isinstance(exc, _rbd.Error)) or \
        (_rados is not None and isinstance(exc, _rados.Error))
