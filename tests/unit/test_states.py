"""The state table: every pair of states is either a move or refused,
and the job store makes exactly the moves the table allows."""

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


def test_every_state_has_a_row_and_finals_lead_nowhere():
    assert set(states.JOB_TRANSITIONS) == set(J)
    assert set(states.HOST_TRANSITIONS) == set(H)
    for state, moves in states.JOB_TRANSITIONS.items():
        assert bool(moves) is not state.is_final, state
        assert all(events for events in moves.values()), state
    for state, moves in states.HOST_TRANSITIONS.items():
        # NOTE: a skipped row is final, yet a late result may replace it.
        assert bool(moves) is (not state.is_final or state is H.SKIPPED)
        assert all(events for events in moves.values()), state


@pytest.mark.parametrize('old,new', JOB_PAIRS)
def test_job_checker_walks_the_table(old, new):
    if new in states.JOB_TRANSITIONS[old]:
        states.check_job_transition(old, new)
        return
    with pytest.raises(exception.InvalidStateTransition) as info:
        states.check_job_transition(old, new)
    assert info.value.kwargs['old'] == old.value
    assert info.value.kwargs['new'] == new.value
    assert isinstance(info.value, exception.Conflict)
    assert str(info.value) == 'Conflict: a job cannot go from %s to %s' % (
        old.value, new.value)


@pytest.mark.parametrize('old,new', JOB_PAIRS)
def test_job_checker_knows_each_move_by_its_event(old, new):
    allowed = states.JOB_TRANSITIONS[old].get(new, frozenset())
    for event in states.JobEvent:
        if event in allowed:
            states.check_job_transition(old, new, event)
        else:
            with pytest.raises(exception.InvalidStateTransition):
                states.check_job_transition(old, new, event)


@pytest.mark.parametrize('old,new', HOST_PAIRS)
def test_host_checker_walks_the_table(old, new):
    if new in states.HOST_TRANSITIONS[old]:
        states.check_host_transition(old, new)
    else:
        with pytest.raises(exception.InvalidStateTransition):
            states.check_host_transition(old, new)


def test_results_are_final_states():
    for state in H:
        if state.is_final:
            states.check_host_result(state)
        else:
            with pytest.raises(exception.InvalidStateTransition):
                states.check_host_result(state)


def test_sources_the_store_guards_with():
    assert states.job_sources(J.RUNNING, states.JobEvent.START) == (
        J.PENDING, J.RUNNING)
    for final in (J.DONE, J.CANCELLED, J.EXPIRED):
        assert states.job_sources(final, states.JobEvent.FINISH) == (
            J.RUNNING,)
    assert states.job_sources(J.FAILED, states.JobEvent.FAIL) == (
        J.PENDING, J.RUNNING)
    assert states.host_sources(H.RUNNING, states.HostEvent.CLAIM) == (
        H.PENDING, H.RUNNING)
    assert states.host_sources(H.SKIPPED, states.HostEvent.CANCEL) == (
        H.PENDING,)
    assert states.host_sources(H.SKIPPED, states.HostEvent.LEFT) == (
        H.PENDING, H.RUNNING)
    assert states.host_sources(H.ERROR) == (H.PENDING, H.RUNNING,
                                            H.SKIPPED)


@pytest.mark.parametrize('member,words', [
    (states.JobReason.CANCELLED, 'cancelled by request'),
    (states.JobReason.WINDOW_CLOSED, 'window closed'),
    (states.SkipReason.CANCELLED, 'cancelled'),
    (states.SkipReason.WINDOW_CLOSED, 'window closed'),
    (states.ErrorReason.ABANDONED, 'window closed, abandoned after grace'),
])
def test_reasons_are_their_words(member, words):
    assert member == words
    assert str(member) == words and '%s' % member == words
    assert type(member).of(words) is member


@pytest.mark.parametrize('cls,text,member', [
    (states.JobReason, 'job failed: disk full', states.JobReason.FAILED),
    (states.JobReason, 'cancelled by requester', None),
    (states.JobReason, None, None),
    (states.SkipReason, 'agent down (no heartbeat for 84s, agent_down_time '
     '60s)', states.SkipReason.AGENT_DOWN),
    (states.SkipReason, 'agent unreachable: gone',
     states.SkipReason.AGENT_UNREACHABLE),
    (states.SkipReason, 'window closed, abandoned after grace', None),
    (states.ErrorReason, 'timed out after 600s (host_call_timeout)',
     states.ErrorReason.TIMED_OUT),
    (states.ErrorReason, 'window closed, abandoned after grace',
     states.ErrorReason.ABANDONED),
])
def test_reason_of_a_longer_text(cls, text, member):
    assert cls.of(text) is member


# -- the store ---------------------------------------------------------------

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
def test_store_moves_a_job_only_as_the_table_allows(own_store, old, new):
    job_id = _job(own_store)
    for state in _JOB_PATHS[old]:
        assert own_store.set_job_state(job_id, state)
    assert own_store.get_job(job_id).state is old
    if new in states.JOB_TRANSITIONS[old]:
        assert own_store.set_job_state(job_id, new)
        assert own_store.get_job(job_id).state is new
        return
    with pytest.raises(exception.InvalidStateTransition):
        own_store.set_job_state(job_id, new)
    assert own_store.get_job(job_id).state is old
    # NOTE: a compare-and-swap that does not match moves nothing, quietly.
    others = [s for s in J if s is not old]
    assert not own_store.set_job_state(job_id, new, only_from=others)


@pytest.mark.parametrize('old', list(J))
def test_cancel_moves_as_the_table_says(own_store, old):
    job_id = _job(own_store)
    for state in _JOB_PATHS[old]:
        own_store.set_job_state(job_id, state)
    if old.is_final:
        with pytest.raises(exception.Conflict):
            own_store.cancel_job(job_id, states.JobReason.CANCELLED)
        return
    job = own_store.cancel_job(job_id, states.JobReason.CANCELLED)
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
def test_store_moves_a_row_only_as_the_table_allows(own_store, old, new):
    job_id = _job(own_store)
    _host_in(own_store, job_id, old)
    assert _state_of(own_store, job_id) is old
    if new in states.HOST_TRANSITIONS[old]:
        assert own_store.set_host_state(job_id, 's-h1', new,
                                        only_from=old) == 1
        assert _state_of(own_store, job_id) is new
        return
    with pytest.raises(exception.InvalidStateTransition):
        own_store.set_host_state(job_id, 's-h1', new, only_from=old)
    # Without only_from the rows that may not move stay as they are.
    assert own_store.set_host_state(job_id, 's-h1', new) == 0
    assert _state_of(own_store, job_id) is old


def test_store_refuses_an_unfinished_result(own_store):
    job_id = _job(own_store)
    for state in (H.PENDING, H.RUNNING):
        with pytest.raises(exception.InvalidStateTransition):
            own_store.record_results(job_id, [objects.HostImageResult(
                host='s-h1', image_id=IMAGE.id, state=state)])
    assert _state_of(own_store, job_id) is H.PENDING
