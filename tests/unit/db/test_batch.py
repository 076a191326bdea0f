"""GroupCommit: threads share transactions, each gets its own answer."""

from __future__ import annotations

import threading
import time

import pytest

from precache.db.batch import GroupCommit


def test_items_queued_during_a_commit_share_the_next():
    batches: list[list[int]] = []
    first_started = threading.Event()

    def commit(items: list[int]) -> list[int]:
        batches.append(list(items))
        first_started.set()
        time.sleep(0.2)
        return [item * 10 for item in items]

    group = GroupCommit(commit)
    answers: dict[int, int] = {}
    first = threading.Thread(target=lambda: answers.update({0: group(0)}))
    first.start()
    first_started.wait(5)
    others = [threading.Thread(target=lambda n=n: answers.update(
        {n: group(n)})) for n in range(1, 9)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(10)
    assert answers == {n: n * 10 for n in range(9)}
    # The eight that waited for the first commit went in one more.
    assert batches[0] == [0]
    assert sorted(batches[1]) == list(range(1, 9))
    assert len(batches) == 2


def test_every_caller_of_a_failed_commit_gets_its_error():
    calls = []

    def commit(items: list[str]) -> list[str]:
        calls.append(items)
        if 'bad' in items:
            raise RuntimeError('disk full')
        return items

    group = GroupCommit(commit)
    with pytest.raises(RuntimeError, match='disk full'):
        group('bad')
    assert group('good') == 'good'
    assert calls == [['bad'], ['good']]
