"""One host's part of a job: decide whether to call it, call it, translate.

Whatever happens — the registry says the agent is down, it does not answer
its ping, the call times out or raises — the host ends with one final
result per image, with a reason. Nova loses exactly these cases.

The ping exists so that a long ``cache_images`` call is never queued for
an agent that is gone (the message would wait in its queue for up to
``host_call_timeout`` and run when the agent comes back). An agent heard
within one heartbeat interval is known to be alive, so it gets no ping:
that halves the round trips per host, which is what bounds a big fan-out
(docs/performance.md). A host the registry only doubts (a stale row just
after a conductor start, see registry.py) is pinged within its slot, so
``max_concurrent_hosts`` bounds pings and calls alike; its answer, not
the row, decides. The call carries the time after which the conductor
stops waiting, so an agent that restarts later drops it rather than
doing work nobody waits for.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable

import oslo_messaging as messaging

from precache import context, exception, objects, states
from precache.agent.rpcapi import AgentAPI
from precache.conductor import windows
from precache.conductor.registry import AgentStatus, too_old
from precache.conf import CONF

LOG = logging.getLogger(__name__)

State = objects.HostImageState


def results_for(host: str, cell: str | None,
                images: list[objects.ImageSpec], state: State,
                reason: str, started_at: datetime.datetime | None = None
                ) -> list[objects.HostImageResult]:
    """The same final state and reason for every image of a host.

    ``started_at``: when the host's ping or call began, so the rows show
    how long it was waited for.
    """
    now = objects.utcnow()
    started_at = started_at or now
    seconds = max(0.0, (now - started_at).total_seconds())
    return [objects.HostImageResult(host=host, image_id=image.id, cell=cell,
                                    state=state, reason=reason,
                                    seconds=seconds, started_at=started_at,
                                    finished_at=now)
            for image in images]


class HostCaller:
    """Calls agents for one conductor; see the module docstring."""

    def __init__(self, agents: Callable[[str | None], AgentAPI],
                 agent_status: Callable[[str, str | None], AgentStatus]
                 | None = None) -> None:
        """``agents(cell)`` is the agent client of a cell's bus;
        ``agent_status(host, cell)`` what the registry knows."""
        self.agents = agents
        self.agent_status = agent_status

    def cache_images(self, job: objects.Job,
                     images: list[objects.ImageSpec], host: str,
                     cell: str | None,
                     window: windows.Window | None = None
                     ) -> list[objects.HostImageResult]:
        """Make ``images`` resident on ``host``; never raises for it.

        With a ``window``, the call is not sent once it has closed and is
        not waited for beyond its deadline plus ``window_grace``.
        """
        window = window or windows.Window(None)
        status = (self.agent_status(host, cell) if self.agent_status
                  else AgentStatus())
        if status.skip_reason:
            return results_for(host, cell, images, State.SKIPPED,
                               status.skip_reason)
        agent = self.agents(cell)
        # NOTE: made this (fan-out) thread's current one: its lines, and
        # the agent's for the call, carry the job's ids.
        ctxt = context.for_job(job.id, job.request_id)
        if not status.heard_recently or CONF.conductor.always_ping_agents:
            started_at = objects.utcnow()
            why = self._ping(ctxt, agent, host, status)
            if why:
                return results_for(host, cell, images, State.SKIPPED, why,
                                   started_at)
        if window.closed():
            # NOTE: the ping may have taken the last seconds of the window.
            return results_for(host, cell, images, State.SKIPPED,
                               states.SkipReason.WINDOW_CLOSED.value)
        return self._call(ctxt, agent, images, host, cell, window)

    @staticmethod
    def _ping(ctxt: context.RequestContext, agent: AgentAPI, host: str,
              status: AgentStatus) -> str | None:
        """None when the agent answers, else why the host is skipped.

        The answer, not the registry's row, tells the agent's version.
        """
        timeout = CONF.conductor.agent_ping_timeout
        try:
            answer = agent.ping(ctxt, host, timeout=timeout)
        except messaging.MessagingTimeout:
            return status.unanswered('no answer to ping within %ds'
                                     % timeout)
        except messaging.MessagingException as exc:
            if status.doubt:
                return status.unanswered('ping failed: %s' % exc)
            return states.SkipReason.AGENT_UNREACHABLE.detail(exc)
        if status.doubt:
            LOG.info('Agent %(host)s answered its ping: the registry\'s '
                     '"%(doubt)s (%(why)s)" was out of date',
                     {'host': host, 'doubt': status.doubt,
                      'why': status.evidence})
        return too_old(answer.get('rpc_version'))

    @staticmethod
    def _call(ctxt: context.RequestContext, agent: AgentAPI,
              images: list[objects.ImageSpec], host: str,
              cell: str | None,
              window: windows.Window) -> list[objects.HostImageResult]:
        timeout, by_window = window.call_timeout(
            CONF.conductor.host_call_timeout)
        monitor = CONF.conductor.call_monitor_timeout
        start, started_at = time.monotonic(), objects.utcnow()
        # NOTE: past this, without a heartbeat, the conductor has given up
        # (the agent adds its own allowance for clock skew).
        ctxt = ctxt.waited_until(objects.utcnow() + datetime.timedelta(
            seconds=min(monitor, timeout)))
        try:
            results = agent.cache_images(ctxt, host, images, timeout=timeout,
                                         call_monitor_timeout=monitor)
        except messaging.MessagingTimeout:
            elapsed = time.monotonic() - start
            if elapsed < timeout - 1:
                reason = ('%s after %.0fs (no heartbeat for %ds)' % (
                    states.ErrorReason.STOPPED_RESPONDING.value, elapsed,
                    monitor))
            elif by_window:
                reason = states.ErrorReason.ABANDONED.value
            else:
                reason = '%s after %ds (host_call_timeout)' % (
                    states.ErrorReason.TIMED_OUT.value, timeout)
            return results_for(host, cell, images, State.ERROR, reason,
                               started_at)
        except messaging.MessageDeliveryFailure as exc:
            # NOTE: the request never left the conductor (the bus was away
            # and the driver gave up reconnecting): as a failed ping, the
            # host was not attempted, and a retry may reach it.
            return results_for(host, cell, images, State.SKIPPED,
                               states.SkipReason.AGENT_UNREACHABLE.detail(
                                   exc), started_at)
        except messaging.RemoteError as exc:
            return results_for(host, cell, images, State.ERROR,
                               states.ErrorReason.AGENT_FAILED.detail(
                                   '%s: %s' % (exc.exc_type, exc.value)),
                               started_at)
        except (messaging.MessagingException,
                exception.PrecacheException) as exc:
            return results_for(host, cell, images, State.ERROR,
                               getattr(exc, 'message', None) or str(exc),
                               started_at)
        by_image = {r.image_id: r for r in results}
        final = []
        for image in images:
            result = by_image.get(image.id) or results_for(
                host, cell, [image], State.ERROR,
                'agent returned no result for this image', started_at)[0]
            result.host, result.cell = host, cell
            final.append(result)
        return final
