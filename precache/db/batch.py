"""Group commit: the writes of many threads in one transaction.

At the end of each wave of a fan-out, dozens of hosts answer within a few
milliseconds, and each answer, then the claim of the host that takes its
slot, is a write. One transaction each, one at a time, delays the next
wave by their sum. Here a thread that finds another committing queues its
item; the next committer takes every item queued by then. Each caller
still returns only once its own item is committed (or with the error of
the transaction that carried it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Item = TypeVar('Item')
Answer = TypeVar('Answer')


class _Slot:
    __slots__ = ('done', 'answer', 'error')

    def __init__(self) -> None:
        self.done = False
        self.answer: Any = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Answer]):
    """``commit(items)`` writes items in one transaction and returns one
    answer per item, in order."""

    def __init__(self, commit: Callable[[list[Item]], list[Answer]]) -> None:
        self._commit = commit
        self._committing = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[Item, _Slot]] = []

    def __call__(self, item: Item) -> Answer:
        slot = _Slot()
        with self._queue_lock:
            self._queue.append((item, slot))
        with self._committing:
            if not slot.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._run(batch)
        if slot.error is not None:
            raise slot.error
        return slot.answer

    def _run(self, batch: list[tuple[Item, _Slot]]) -> None:
        try:
            answers = self._commit([item for item, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - each caller raises it
            for _, slot in batch:
                slot.error, slot.done = exc, True
            return
        for (_, slot), answer in zip(batch, answers, strict=True):
            slot.answer, slot.done = answer, True
