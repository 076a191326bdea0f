"""The state machine of jobs and of their (host, image) rows.

One table per record says which state may follow which, and on what
event; the store guards its compare-and-swap updates with the sets it
derives from them, and refuses any other move. Reasons are typed too:
each enum's values are the exact words the job store, the API and the
CLI show, so an enum member compares equal to the text read back.
Reasons with a variable part (``agent down (no heartbeat for 84s)``,
``job failed: disk full``) start with their member's words; :meth:`of`
finds the member again.

This module sits just above :mod:`precache.objects` and
:mod:`precache.exception` and imports nothing else of precache.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from precache import exception
from precache.objects import HostImageState, JobState

__all__ = ['JobState', 'HostImageState', 'JobEvent', 'HostEvent',
           'JobReason', 'SkipReason', 'ErrorReason', 'JOB_TRANSITIONS',
           'HOST_TRANSITIONS', 'check_job_transition',
           'check_host_transition', 'check_host_result', 'job_sources',
           'host_sources', 'TRANSIENT', 'is_transient']


class JobEvent(enum.StrEnum):
    START = 'start'    # a conductor starts it, or resumes it after a restart
    CANCEL = 'cancel'  # a cancel request; hosts in flight keep it running
    FINISH = 'finish'  # its runner recorded the last host
    FAIL = 'fail'      # it could not run on (its unfinished rows: error)


class HostEvent(enum.StrEnum):
    CLAIM = 'claim'    # its call starts (again, when a job resumes)
    RESULT = 'result'  # its call ended, or it failed before its call
    CANCEL = 'cancel'  # a cancel skips what has not started
    LEFT = 'left'      # not started by the deadline, or by a dead runner
    FAIL = 'fail'      # the job failed around it
    LATE = 'late result'  # a call whose claim a cancel had lost ended


class _Words(enum.StrEnum):
    """A reason: its value is the words shown, the start of longer ones."""

    @classmethod
    def of(cls, text: str | None) -> _Words | None:
        """The member ``text`` is, or starts with before a space or a
        colon; None for any other text."""
        if not text:
            return None
        for member in cls:
            if text == member.value:
                return member
        for member in sorted(cls, key=len, reverse=True):
            if text.startswith(member.value) and \
                    text[len(member.value)] in ' :':
                return member
        return None

    def detail(self, text: object) -> str:
        """``job failed: disk full``: the words, then what varies."""
        return '%s: %s' % (self.value, text)


class JobReason(_Words):
    """A job's ``reason``."""

    CANCELLED = 'cancelled by request'  # set on cancel, kept to the end
    WINDOW_CLOSED = 'window closed'     # an expired job
    FAILED = 'job failed'               # 'job failed: <error>'


class SkipReason(_Words):
    """Why a (host, image) row is ``skipped``: it was never attempted."""

    CANCELLED = 'cancelled'
    WINDOW_CLOSED = 'window closed'
    # NOTE: these four are followed by ' (<evidence>)' (conductor/registry.py)
    AGENT_DOWN = 'agent down'
    AGENT_STOPPED = 'agent stopped'
    AGENT_TOO_OLD = 'agent too old'
    AGENT_NOT_RESPONDING = 'agent not responding'
    AGENT_UNREACHABLE = 'agent unreachable'  # ': <messaging error>'
    # NOTE: written by the agent itself (agent/manager.py)
    REQUEST_EXPIRED = 'request expired in the agent queue'


class ErrorReason(_Words):
    """Why a row ended ``error``: the conductor's words, then the agent's
    own besides its backends' messages."""

    INTERNAL = 'internal error'                  # ': <exception>'
    JOB_FAILED = 'job failed'                    # ': <exception>'
    STOPPED_RESPONDING = 'agent stopped responding'  # ' after Ns (...)'
    TIMED_OUT = 'timed out'                      # ' after Ns (...)'
    ABANDONED = 'window closed, abandoned after grace'
    AGENT_FAILED = 'agent failed'                # ': <type>: <value>'
    NO_RESULT = 'agent returned no result for this image'
    # NOTE: written by the agent itself (agent/cache.py); NO_BACKEND
    # ends a row ``unsupported``.
    UNEXPECTED = 'unexpected error'              # ': <exception>'
    NO_BACKEND = 'no backend enabled'


#: Whether a row that ended with this reason may be tried again within
#: its job (conductor/retries.py): True when another attempt can end
#: otherwise — the agent or the bus may be back — False when it would
#: fail the same way (the agent said so, or it was stopped, too old or
#: told to stop) or there is nothing to retry. Every reason is listed; a
#: reason that is none of these (a backend's own words: hash mismatch,
#: no space, unsupported image) is not transient.
TRANSIENT: Mapping[SkipReason | ErrorReason, bool] = {
    SkipReason.CANCELLED: False,
    SkipReason.WINDOW_CLOSED: False,
    # NOTE: silent past agent_down_time, as while the bus was down; the
    # row clears with its next heartbeat, and skipping from it is free.
    SkipReason.AGENT_DOWN: True,
    # NOTE: a goodbye: stopped on purpose, back when an operator says.
    SkipReason.AGENT_STOPPED: False,
    SkipReason.AGENT_TOO_OLD: False,
    SkipReason.AGENT_NOT_RESPONDING: True,
    SkipReason.AGENT_UNREACHABLE: True,
    # NOTE: it waited in a busy agent's queue; a new call is in time.
    SkipReason.REQUEST_EXPIRED: True,
    ErrorReason.INTERNAL: False,
    ErrorReason.JOB_FAILED: False,
    ErrorReason.STOPPED_RESPONDING: True,
    ErrorReason.TIMED_OUT: True,
    ErrorReason.ABANDONED: False,
    ErrorReason.AGENT_FAILED: False,
    ErrorReason.NO_RESULT: False,
    ErrorReason.UNEXPECTED: False,
    ErrorReason.NO_BACKEND: False,
}


def is_transient(state: HostImageState, reason: str | None) -> bool:
    """Whether a row in ``state`` with ``reason`` may be tried again."""
    member: SkipReason | ErrorReason | None
    if state is HostImageState.SKIPPED:
        member = SkipReason.of(reason)  # type: ignore[assignment]
    elif state is HostImageState.ERROR:
        member = ErrorReason.of(reason)  # type: ignore[assignment]
    else:
        return False
    return member is not None and TRANSIENT[member]


_J, _H = JobState, HostImageState
_JE, _HE = JobEvent, HostEvent

#: state → {next state: the events that make that move}. A final state
#: has no next state.
JOB_TRANSITIONS: Mapping[JobState, Mapping[JobState, frozenset[JobEvent]]] = {
    _J.PENDING: {
        _J.RUNNING: frozenset({_JE.START}),
        _J.CANCELLED: frozenset({_JE.CANCEL}),
        _J.FAILED: frozenset({_JE.FAIL}),
    },
    _J.RUNNING: {
        # NOTE: a cancel with hosts in flight only sets the reason; the
        # runner then finishes the job cancelled.
        _J.RUNNING: frozenset({_JE.START, _JE.CANCEL}),
        _J.DONE: frozenset({_JE.FINISH}),
        _J.CANCELLED: frozenset({_JE.CANCEL, _JE.FINISH}),
        _J.EXPIRED: frozenset({_JE.FINISH}),
        _J.FAILED: frozenset({_JE.FAIL}),
    },
    _J.DONE: {},
    _J.FAILED: {},
    _J.CANCELLED: {},
    _J.EXPIRED: {},
}

_ENDS = frozenset({_HE.RESULT})
_ANSWERED = {_H.CACHED: _ENDS, _H.EXISTING: _ENDS, _H.UNSUPPORTED: _ENDS}
_LATE = frozenset({_HE.LATE})

#: (host, image) state → {next state: the events that make that move}.
HOST_TRANSITIONS: Mapping[HostImageState,
                          Mapping[HostImageState, frozenset[HostEvent]]] = {
    _H.PENDING: {
        _H.RUNNING: frozenset({_HE.CLAIM}),
        _H.ERROR: frozenset({_HE.RESULT, _HE.FAIL}),
        _H.SKIPPED: frozenset({_HE.CANCEL, _HE.LEFT}),
    },
    _H.RUNNING: {
        _H.RUNNING: frozenset({_HE.CLAIM}),
        **_ANSWERED,
        _H.ERROR: frozenset({_HE.RESULT, _HE.FAIL}),
        _H.SKIPPED: frozenset({_HE.RESULT, _HE.LEFT}),
    },
    # NOTE: a cancel made through another conductor skipped the host as
    # its call started; the call's result then says what happened.
    _H.SKIPPED: {state: _LATE for state in (
        _H.CACHED, _H.EXISTING, _H.ERROR, _H.UNSUPPORTED, _H.SKIPPED)},
    _H.CACHED: {},
    _H.EXISTING: {},
    _H.ERROR: {},
    _H.UNSUPPORTED: {},
}


def _refused(what: str, old: enum.Enum, new: enum.Enum
             ) -> exception.InvalidStateTransition:
    return exception.InvalidStateTransition(
        reason='a %s cannot go from %s to %s' % (what, old.value, new.value),
        what=what, old=old.value, new=new.value)


def check_job_transition(old: JobState, new: JobState,
                         event: JobEvent | None = None) -> None:
    """:raises: InvalidStateTransition unless a job may go old → new
    (on ``event``, if given)."""
    if new not in JOB_TRANSITIONS[old] or (
            event is not None and event not in JOB_TRANSITIONS[old][new]):
        raise _refused('job', old, new)


def check_host_transition(old: HostImageState, new: HostImageState) -> None:
    """:raises: InvalidStateTransition unless a row may go old → new."""
    if new not in HOST_TRANSITIONS[old]:
        raise _refused('host image', old, new)


def check_host_result(state: HostImageState) -> None:
    """A recorded result ends its row: the state must be one a running
    host's call ends in.

    :raises: InvalidStateTransition
    """
    if HostEvent.RESULT not in HOST_TRANSITIONS[_H.RUNNING].get(
            state, frozenset()):
        raise _refused('host image', _H.RUNNING, state)


def job_sources(new: JobState, event: JobEvent) -> tuple[JobState, ...]:
    """The job states ``event`` moves to ``new`` from, in enum order."""
    return tuple(old for old in JobState
                 if event in JOB_TRANSITIONS[old].get(new, ()))


def host_sources(new: HostImageState, event: HostEvent | None = None
                 ) -> tuple[HostImageState, ...]:
    """The row states ``event`` (any, if None) moves to ``new`` from."""
    return tuple(old for old in HostImageState
                 if new in HOST_TRANSITIONS[old]
                 and (event is None or event in HOST_TRANSITIONS[old][new]))
