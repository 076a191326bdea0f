"""The job store makes exactly the moves the state table allows: every
pair of job states and of (host, image) states, on every database."""

from __future__ import annotations

import itertools
import uuid

import pytest

from precache import exception, objects, states
from precache.states import HostImageState as H
from precache.states import JobState as J

IMAGE = objects.ImageSpec(id='11111111-1111-4111-8111-111111111111', size=1)
HOSTS = [('s-h1', None), ('s-h2', None)]
JOB_PAIRS = list(itertools.product(J, J))
HOST_PAIRS = list(itertools.product(H, H))


def _job(store) -> str:
    return store.create_job(str(uuid.uuid4()), 'agg', [IMAGE], HOSTS,
                            {}).id


#: How to bring a new job to each state through moves the table allows.
_JOB_PATHS = {
    J.PENDING: (), J.RUNNING: (J.RUNNING,), J.DONE: (J.RUNNING, J.DONE),
    J.FAILED: (J.FAILED,), J.CANCELLED: (J.CANCELLED,),
    J.EXPIRED: (J.RUNNING, J.EXPIRED),
}


@pytest.mark.parametrize('old,new', JOB_PAIRS)
def test_store_moves_a_job_only_as_the_table_allows(store, old, new):
    job_id = _job(store)
    for state in _JOB_PATHS[old]:
        assert store.set_job_state(job_id, state)
    assert store.get_job(job_id).state is old
    if new in states.JOB_TRANSITIONS[old]:
        assert store.set_job_state(job_id, new)
        assert store.get_job(job_id).state is new
        return
    with pytest.raises(exception.InvalidStateTransition):
        store.set_job_state(job_id, new)
    assert store.get_job(job_id).state is old
    # NOTE: a compare-and-swap that does not match moves nothing, quietly.
    others = [s for s in J if s is not old]
    assert not store.set_job_state(job_id, new, only_from=others)


@pytest.mark.parametrize('old', list(J))
def test_cancel_moves_as_the_table_says(store, old):
    job_id = _job(store)
    for state in _JOB_PATHS[old]:
        store.set_job_state(job_id, state)
    if old.is_final:
        with pytest.raises(exception.Conflict):
            store.cancel_job(job_id, states.JobReason.CANCELLED)
        return
    job = store.cancel_job(job_id, states.JobReason.CANCELLED)
    assert job.state is J.CANCELLED
    assert states.JobEvent.CANCEL in states.JOB_TRANSITIONS[old][J.CANCELLED]
    assert states.JobReason.of(job.reason) is states.JobReason.CANCELLED


def _host_in(store, job_id: str, state: H) -> None:
    """Bring host s-h1's rows to ``state`` by allowed moves."""
    if state is H.PENDING:
        return
    if state is H.RUNNING:
        assert store.claim_host(job_id, 's-h1')
        return
    if state is H.SKIPPED:
        assert store.skip_hosts(job_id, ['s-h1'],
                                states.SkipReason.WINDOW_CLOSED) == 1
        return
    assert store.claim_host(job_id, 's-h1')
    store.record_results(job_id, [objects.HostImageResult(
        host='s-h1', image_id=IMAGE.id, state=state)])


def _state_of(store, job_id: str) -> H:
    return {r.host: r.state for r in store.get_job(job_id).results}['s-h1']


@pytest.mark.parametrize('old,new', HOST_PAIRS)
def test_store_moves_a_row_only_as_the_table_allows(store, old, new):
    job_id = _job(store)
    _host_in(store, job_id, old)
    assert _state_of(store, job_id) is old
    if new in states.HOST_TRANSITIONS[old]:
        assert store.set_host_state(job_id, 's-h1', new,
                                        only_from=old) == 1
        assert _state_of(store, job_id) is new
        return
    with pytest.raises(exception.InvalidStateTransition):
        store.set_host_state(job_id, 's-h1', new, only_from=old)
    # Without only_from the rows that may not move stay as they are.
    assert store.set_host_state(job_id, 's-h1', new) == 0
    assert _state_of(store, job_id) is old


def test_store_refuses_an_unfinished_result(store):
    job_id = _job(store)
    for state in (H.PENDING, H.RUNNING):
        with pytest.raises(exception.InvalidStateTransition):
            store.record_results(job_id, [objects.HostImageResult(
                host='s-h1', image_id=IMAGE.id, state=state)])
    assert _state_of(store, job_id) is H.PENDING
