"""The state table: every pair of states is either a move or refused
(the job store's side: tests/unit/db/test_state_moves.py)."""

from __future__ import annotations

import itertools

import pytest

from precache import exception, states
from precache.states import HostImageState as H
from precache.states import JobState as J

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


# -- which failures are tried again ------------------------------------------

#: The reasons retried within a job; every other reason is not.
RETRIED = {
    states.SkipReason.AGENT_DOWN, states.SkipReason.AGENT_NOT_RESPONDING,
    states.SkipReason.AGENT_UNREACHABLE, states.SkipReason.REQUEST_EXPIRED,
    states.ErrorReason.STOPPED_RESPONDING, states.ErrorReason.TIMED_OUT,
}


def test_every_row_reason_is_decided_transient_or_not():
    assert set(states.TRANSIENT) == set(states.SkipReason) | set(
        states.ErrorReason)
    assert {m for m, transient in states.TRANSIENT.items()
            if transient} == RETRIED


@pytest.mark.parametrize('member', list(states.SkipReason)
                         + list(states.ErrorReason))
def test_is_transient_walks_the_table(member):
    """A reason decides under the state it ends its row in, with or
    without its variable part and an attempt count."""
    state = H.SKIPPED if isinstance(member, states.SkipReason) else H.ERROR
    for text in (member.value, member.detail('x'),
                 '%s (y) after 3 attempts' % member.value):
        assert states.is_transient(state, text) is (member in RETRIED)
    # Only rows that failed are tried again.
    assert not states.is_transient(H.CACHED, member.value)


@pytest.mark.parametrize('state,reason', [
    (H.ERROR, 'Image 1 failed verification: hash mismatch'),
    (H.ERROR, 'Cache store error for image 1: no space left'),
    (H.UNSUPPORTED, 'file: not a raw image'),
    (H.ERROR, 'agent failed: CacheStoreError: no space'),
    (H.ERROR, None), (H.SKIPPED, ''), (H.CACHED, None), (H.EXISTING, None),
])
def test_permanent_outcomes_are_not_transient(state, reason):
    assert not states.is_transient(state, reason)
