"""A RADOS lock on one object, held while renewed by a timer thread.

Every compute of a cluster shares the pool, so a per-image lock is a
RADOS lock in the pool, lapsing ``lease`` seconds after its holder died.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from precache.agent import rbd as rbd_mod

LOG = logging.getLogger(__name__)

LOCK_NAME = 'precache'
_LOCK_FLAG_RENEW = 0x1   # LIBRADOS_LOCK_FLAG_RENEW


class HeldLock:
    """A RADOS lock held on one object, renewed by a timer thread."""

    def __init__(self, ioctx: Any, key: str, cookie: str,
                 lease: int) -> None:
        self.ioctx = ioctx
        self.key = key
        self.cookie = cookie
        self.lease = lease
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True,
                                        name='rbd-lock-renew')

    def try_acquire(self) -> bool:
        try:
            self.ioctx.lock_exclusive(self.key, LOCK_NAME, self.cookie,
                                      desc='precache fetch',
                                      duration=self.lease)
        except rbd_mod.rados.ObjectBusy:
            return False
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.ioctx.lock_exclusive(
                    self.key, LOCK_NAME, self.cookie, desc='precache fetch',
                    duration=self.lease, flags=_LOCK_FLAG_RENEW)
            except Exception as exc:  # noqa: BLE001 - recorded
                self.lost = 'lost the lock %s: %s' % (
                    self.key, rbd_mod.describe(exc))
                LOG.warning('%s', self.lost)
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with contextlib.suppress(Exception):
            self.ioctx.unlock(self.key, LOCK_NAME, self.cookie)
