"""Client side of the agent RPC API (conductor → agent on one host)."""

from __future__ import annotations

from typing import Any

import oslo_messaging as messaging

from precache import context, objects, rpc


class AgentAPI:
    """Calls to the ``precache-agent`` topic, addressed to one host.

    API version history:

    |    1.0 - Initial version: ping, cache_images.
    |    (no version) - Calls go through precache.rpc.Serializer: a
    |          RequestContext and ImageSpec / HostImageResult objects on
    |          both sides; the dicts on the bus did not change.
    """

    # NOTE: must stay equal to AgentManager.RPC_API_VERSION (a test checks).
    RPC_API_VERSION = '1.0'

    def __init__(self, transport: messaging.Transport) -> None:
        self.client = rpc.get_client(transport, rpc.AGENT_TOPIC,
                                     self.RPC_API_VERSION)

    def ping(self, ctxt: context.RequestContext, host: str,
             timeout: int) -> dict[str, Any]:
        """Liveness and capabilities of the agent on ``host``.

        :returns: dict with host, cell, version, rpc_version, backends,
            store.
        :raises: oslo_messaging.MessagingTimeout when nobody answers.
        """
        cctxt = self.client.prepare(server=host, version='1.0',
                                    timeout=timeout)
        return cctxt.call(ctxt, 'ping')

    @rpc.typed
    def cache_images(self, ctxt: context.RequestContext, host: str,
                     images: list[objects.ImageSpec], timeout: int,
                     call_monitor_timeout: int
                     ) -> list[objects.HostImageResult]:
        """Make ``images`` resident on ``host``; one result per image.

        A long call: the agent heartbeats every ``call_monitor_timeout / 2``
        seconds, so a dead agent is noticed after ``call_monitor_timeout``,
        while ``timeout`` caps the whole call.

        :raises: oslo_messaging.MessagingTimeout, MessagingException.
        """
        cctxt = self.client.prepare(
            server=host, version='1.0', timeout=timeout,
            call_monitor_timeout=call_monitor_timeout)
        return cctxt.call(ctxt, 'cache_images', images=images)
