"""A host's attempts within its job: which failures, how many, when.

A host whose attempt ended for a transient reason (the table
precache.states.TRANSIENT: agent down or not responding, unreachable,
stopped responding, timed out) is tried again within its job, for the
images that failed so; the images it answered for keep their results.
The attempts go through tenacity — its stop bound (``[conductor]
host_attempts``, or the job's lower option ``host_attempts``, and the
job's stop event: a cancel, a lost claim, the conductor stopping) and its
exponential backoff with jitter (``host_retry_delay``) — but never sleep
in a fan-out slot: the fan-out requeues the host with the time before
which it must not start again (conductor/fanout.py), so other hosts go on
meanwhile. A retry that could not start before the job's deadline is not
made. A host's rows are recorded once, when it is done; a failure says
after how many attempts, and every attempt after a failure is logged with
the job and host ids.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import tenacity

from precache import objects, states
from precache.conductor import windows
from precache.conf import CONF

LOG = logging.getLogger(__name__)

#: The longest wait between two attempts, whatever their number.
LONGEST_WAIT = 300.0


class HostAttempts:
    """The attempts at one host of one job, and what they left."""

    def __init__(self, job_id: str, host: str,
                 images: list[objects.ImageSpec], limit: int,
                 window: windows.Window, stop: threading.Event) -> None:
        """``limit``: attempts at most; ``stop``: set, no further one."""
        self.job_id = job_id
        self.host = host
        self.images = images
        self.limit = limit
        self.window = window
        self.attempts = 0
        # NOTE: results that end their rows, by image id; and the last
        # attempt's transient failures, tried again if tenacity agrees.
        self._kept: dict[str, objects.HostImageResult] = {}
        self._failed: list[objects.HostImageResult] = []
        delay = CONF.conductor.host_retry_delay
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(bool),
            stop=(tenacity.stop_after_attempt(limit)
                  | tenacity.stop_when_event_set(stop)),
            wait=(tenacity.wait_exponential(multiplier=delay,
                                            max=LONGEST_WAIT)
                  + tenacity.wait_random(0, delay)),
            retry_error_callback=lambda state: None)
        self._state = tenacity.RetryCallState(self._retrying, None, (), {})

    def images_to_try(self) -> list[objects.ImageSpec]:
        """All images at first; then those that failed transiently."""
        if not self.attempts:
            return list(self.images)
        failed = {r.image_id for r in self._failed}
        return [image for image in self.images if image.id in failed]

    def ended(self, results: list[objects.HostImageResult]
              ) -> float | None:
        """Take an attempt's results: the seconds to wait before the next
        attempt, or None when the host is done (:meth:`results`)."""
        self.attempts += 1
        self._failed = []
        for result in results:
            if states.is_transient(result.state, result.reason):
                self._failed.append(result)
            else:
                self._kept[result.image_id] = result
        # NOTE: tenacity decides (retry, stop, wait) without sleeping;
        # its statistics live per thread, and attempts run in any.
        self._retrying.begin()
        self._state.set_result(self._failed)
        action = self._retrying.iter(self._state)
        wait = float(action) if isinstance(action, tenacity.DoSleep) \
            else None
        left = self.window.seconds_left()
        if wait is not None and left is not None and wait >= left:
            self._log(results, ' no retry: the window closes in %.0fs'
                      % max(0.0, left))
            return None
        if wait is None:
            # NOTE: with retries off (a limit of 1), no line of its own.
            if self.attempts > 1 or (self._failed and self.limit > 1):
                self._log(results, self._why_done())
            return None
        self._state.prepare_for_next_attempt()
        self._log(results, ' %d image(s) tried again in %.1fs'
                  % (len(self._failed), wait))
        return wait

    def _why_done(self) -> str:
        if not self._failed:
            return ''
        if self.attempts >= self.limit:
            return ' no attempt left'
        return ' no retry: the job stops'

    def _log(self, results: list[objects.HostImageResult],
             then: str) -> None:
        failed = self._failed[0] if self._failed else None
        if failed is not None:
            outcome = '%s (%s)' % (failed.state.value, failed.reason)
        else:
            outcome = ', '.join(sorted({r.state.value for r in results}))
        (LOG.warning if failed else LOG.info)(
            'Job %(job)s: host %(host)s attempt %(n)d of %(of)d: '
            '%(outcome)s;%(then)s',
            {'job': self.job_id, 'host': self.host, 'n': self.attempts,
             'of': self.limit, 'outcome': outcome,
             'then': then or ' done'})

    def dropped(self, why: str) -> None:
        """The next attempt will not be made (``why``)."""
        LOG.warning('Job %(job)s: host %(host)s not tried again after '
                    '%(n)d attempt(s): %(why)s',
                    {'job': self.job_id, 'host': self.host,
                     'n': self.attempts, 'why': why})

    def kept(self) -> list[objects.HostImageResult]:
        """The results that end their rows so far."""
        return list(self._kept.values())

    def results(self) -> list[objects.HostImageResult]:
        """One final result per image, in the job's order; a failure of
        more than one attempt says how many."""
        failed = {r.image_id: r for r in self._failed}
        final = []
        for image in self.images:
            result = self._kept.get(image.id) or failed.get(image.id)
            if result is None:
                continue
            if image.id in failed and self.attempts > 1:
                result = dataclasses.replace(
                    result, reason='%s after %d attempts' % (
                        result.reason, self.attempts))
            final.append(result)
        return final
