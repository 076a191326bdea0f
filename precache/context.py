"""The request context: who asked, and the ids that tie the log lines of
one request together across the API, the conductor and the agents.

oslo.context's RequestContext, plus what precache carries with a call:
the job it is about (``job_id``) and, on an agent call, the time after
which the conductor stops waiting (``abandoned_after``).

The ids follow Nova's rule. ``request_id`` is the id of the work at hand,
``global_request_id`` the id of the request that started it all. The API
makes a ``request_id`` per HTTP request and takes a client's
``X-OpenStack-Request-ID`` as the global one; over RPC both travel as they
are. A job's own work (its thread in the conductor, its calls to agents)
runs under the job's id as ``request_id`` and, as global id, the request
that asked for the job (:func:`for_job`). So the API's request id is in
every line the conductor and the agents write for the job.

oslo.log picks the context up from the thread: every context made here
becomes the current one of the thread that makes it, unless told
otherwise (``overwrite=False``). Work handed to other threads takes it
along with :func:`carried`.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any, Self, TypeVar

from oslo_context import context as oslo_context

T = TypeVar('T')

#: The keys a context has on the message bus: the plain dict callers have
#: always sent (no token, no roles: what the receiver needs for its logs
#: and to drop work nobody waits for). Empty values are left out.
WIRE_KEYS = ('request_id', 'global_request_id', 'user_id', 'project_id',
             'job_id', 'abandoned_after')


def _parse_time(value: Any) -> datetime.datetime | None:
    """An ISO 8601 time (naive means UTC); None when absent or unreadable.

    An unreadable ``abandoned_after`` must not fail the call: the agent
    then does the work, as for a conductor that sends none.
    """
    if isinstance(value, datetime.datetime):
        when = value
    elif isinstance(value, str) and value:
        try:
            when = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


class RequestContext(oslo_context.RequestContext):
    """oslo.context's context with precache's job_id and abandoned_after."""

    FROM_DICT_EXTRA_KEYS = ['job_id', 'abandoned_after']

    def __init__(self, *args: Any, job_id: str | None = None,
                 abandoned_after: datetime.datetime | str | None = None,
                 **kwargs: Any) -> None:
        # NOTE: set before the base class stores the context as current.
        self.job_id = job_id
        self.abandoned_after = _parse_time(abandoned_after)
        super().__init__(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values['job_id'] = self.job_id
        values['abandoned_after'] = (self.abandoned_after.isoformat()
                                     if self.abandoned_after else None)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], **kwargs: Any) -> Self:
        """Also reads the bus's form (:meth:`to_wire`: ``user_id``)."""
        kwargs.setdefault('user_id',
                          values.get('user') or values.get('user_id'))
        return super().from_dict(values, **kwargs)

    def to_wire(self) -> dict[str, Any]:
        """The context as it crosses the bus: see :data:`WIRE_KEYS`."""
        values = self.to_dict()
        values['user_id'] = self.user_id
        return {key: values[key] for key in WIRE_KEYS
                if values.get(key) is not None}

    def get_logging_values(self) -> dict[str, Any]:
        """As oslo.context's, with ``-`` for an absent global id (not the
        word None) in ``[%(global_request_id)s %(request_id)s ...]``."""
        values = super().get_logging_values()
        values['global_request_id'] = self.global_request_id or '-'
        return values

    def seconds_late(self) -> float:
        """How long ago the conductor stopped waiting (none said: 0)."""
        if self.abandoned_after is None:
            return 0.0
        now = datetime.datetime.now(datetime.UTC)
        return (now - self.abandoned_after).total_seconds()

    def waited_until(self, when: datetime.datetime) -> RequestContext:
        """A copy that says the caller stops waiting at ``when``, made
        current (the same ids)."""
        values = self.to_dict()
        values['abandoned_after'] = when
        return RequestContext.from_dict(values)


def get_internal_context(origin: str | None = None,
                         overwrite: bool = True) -> RequestContext:
    """The context of precache's own work: a command, a schedule, a
    notification, a job resumed at start. It has its own request id;
    ``origin`` (e.g. ``schedule-nightly``) becomes its global id."""
    return RequestContext(is_admin=True, global_request_id=origin,
                          overwrite=overwrite)


def for_job(job_id: str, origin: str | None) -> RequestContext:
    """The context of a job's work and of its calls to agents.

    ``origin``: the request id the job store recorded when it accepted
    the job (the API's, or a schedule's); it becomes the global id, and
    the job's id the request id, in every line the job writes.
    """
    return RequestContext(request_id=job_id, global_request_id=origin,
                          job_id=job_id, is_admin=True)


def get_current() -> RequestContext | None:
    """This thread's context, if one of precache's."""
    current = oslo_context.get_current()
    return current if isinstance(current, RequestContext) else None


def carried(function: Callable[..., T]) -> Callable[..., T]:
    """``function``, to run in another thread under the context current
    here and now (a worker pool's threads have none of their own)."""
    current = oslo_context.get_current()

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        if current is not None:
            current.update_store()
        return function(*args, **kwargs)
    return run
