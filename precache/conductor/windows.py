"""Maintenance windows: when a job's hosts may start, and when to give up.

A job may carry ``deadline`` (an absolute ISO 8601 time) or ``window``
(seconds, or ``2h``/``90m``/``1h30m``); a window becomes an absolute
deadline when the job is accepted, so a job that waits for a slot, or is
resumed by a restarted conductor, keeps the operator's wall-clock limit.
After the deadline no host starts (hosts not started end ``skipped
(window closed)`` and the job ``expired``); hosts in flight get
``[conductor] window_grace`` more seconds, bounded by the timeout of their
RPC call, then are abandoned (``error``, ``window closed, abandoned after
grace``). The reasons are precache.states' SkipReason.WINDOW_CLOSED and
ErrorReason.ABANDONED.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from precache import exception, objects
from precache.conf import CONF

#: Wall clock used by every decision here; tests inject their own.
Clock = Callable[[], datetime.datetime]

_DURATION = re.compile(r'^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$')
_CLOCK_TIME = re.compile(r'^([01]?\d|2[0-3]):([0-5]\d)$')


def parse_duration(value: Any) -> int:
    """Seconds from an integer or ``2h``, ``90m``, ``1h30m``, ``45s``.

    :raises: ValueError
    """
    if isinstance(value, bool):
        raise ValueError('not a duration: %r' % (value,))
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    else:
        match = _DURATION.match(value.strip().lower()) if isinstance(
            value, str) else None
        if not match or not any(match.groups()):
            raise ValueError('not a duration (seconds, or like 2h, 90m, '
                             '1h30m): %r' % (value,))
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds < 1:
        raise ValueError('a duration must be at least 1 second')
    return seconds


def parse_deadline(value: str, now: datetime.datetime | None = None
                   ) -> datetime.datetime:
    """An aware datetime from ISO 8601 or ``HH:MM`` (the next such local
    time after ``now``). A naive ISO time is local time, as cron's is.

    :raises: ValueError
    """
    here = now is None
    now = now or datetime.datetime.now().astimezone()
    text = value.strip()
    match = _CLOCK_TIME.match(text)
    if match:
        moment = now.replace(hour=int(match.group(1)),
                             minute=int(match.group(2)), second=0,
                             microsecond=0)
        if moment <= now:
            moment += datetime.timedelta(days=1)
        if here:
            # NOTE: that day's offset, not today's: a DST change may lie
            # between (04:00 tomorrow is 04:00 on the wall clock).
            moment = moment.replace(tzinfo=None).astimezone()
        return moment
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment


def _check_deadline(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise exception.InvalidOption(
            option=name, reason='must be an ISO 8601 time')
    try:
        moment = parse_deadline(value)
    except ValueError as exc:
        raise exception.InvalidOption(option=name, reason=str(exc)) from None
    return moment.astimezone(datetime.UTC).isoformat()


def _check_window(name: str, value: Any) -> int:
    try:
        return parse_duration(value)
    except (ValueError, AttributeError) as exc:
        raise exception.InvalidOption(option=name, reason=str(exc)) from None


#: Option checks for jobs.OPTIONS.
OPTION_CHECKS = {'deadline': _check_deadline, 'window': _check_window}


def fix_deadline(options: dict[str, Any],
                 now: datetime.datetime | None = None) -> dict[str, Any]:
    """Turn ``window`` into an absolute ``deadline`` (accept time).

    :raises: InvalidOption when both are given or the deadline has passed.
    """
    now = now or objects.utcnow()
    if 'window' in options:
        if 'deadline' in options:
            raise exception.InvalidOption(
                option='window', reason='give a deadline or a window, not '
                                        'both')
        options['deadline'] = (now + datetime.timedelta(
            seconds=options['window'])).isoformat()
    deadline = deadline_of(options)
    if deadline is not None and deadline <= now:
        raise exception.InvalidOption(
            option='deadline', reason='%s has already passed'
                                      % deadline.isoformat())
    return options


def deadline_of(options: dict[str, Any]) -> datetime.datetime | None:
    value = options.get('deadline')
    return datetime.datetime.fromisoformat(value) if value else None


class Window:
    """One job's deadline, asked by the fan-out and the host calls."""

    def __init__(self, deadline: datetime.datetime | None,
                 clock: Clock = objects.utcnow) -> None:
        self.deadline = deadline
        self.clock = clock

    def closed(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def seconds_left(self) -> float | None:
        """Until the deadline (None: no deadline; may be negative)."""
        if self.deadline is None:
            return None
        return (self.deadline - self.clock()).total_seconds()

    def call_timeout(self, host_call_timeout: int) -> tuple[int, bool]:
        """The timeout of a host call starting now, and whether the window
        (deadline + grace), not ``host_call_timeout``, sets it.

        oslo.messaging cannot interrupt a call, so abandoning a host after
        the grace period means not waiting longer than this in the first
        place: its ``timeout`` stays a hard cap while heartbeats arrive.
        """
        left = self.seconds_left()
        if left is None:
            return host_call_timeout, False
        bound = max(1, int(left + CONF.conductor.window_grace))
        if bound < host_call_timeout:
            return bound, True
        return host_call_timeout, False
