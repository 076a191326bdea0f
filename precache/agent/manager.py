"""Server side of the agent RPC API: thin endpoints over ImageCache."""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging

from precache import context, objects, rpc, version
from precache.agent.cache import ImageCache
from precache.conf import CONF

LOG = logging.getLogger(__name__)


class AgentManager:
    """RPC endpoint of one host's agent (topic ``precache-agent``)."""

    # NOTE: must stay equal to AgentAPI.RPC_API_VERSION (a test checks).
    RPC_API_VERSION = '1.0'

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, cache: ImageCache, cell: str | None = None) -> None:
        self.cache = cache
        self.host = cache.host
        self.cell = cell

    def ping(self, ctxt: context.RequestContext) -> dict[str, Any]:
        """Liveness and capabilities, for the conductor."""
        return {'host': self.host, 'cell': self.cell,
                'version': version.version_string,
                'rpc_version': self.RPC_API_VERSION,
                'backends': [b.name for b in self.cache.backends],
                'store': self.cache.store.describe()}

    @rpc.typed
    def cache_images(self, ctxt: context.RequestContext,
                     images: list[objects.ImageSpec]
                     ) -> list[objects.HostImageResult]:
        """Make ``images`` resident here.

        :param images: as the conductor read them from the image service.
        :returns: one result per image, in order.
        """
        LOG.info('RPC cache_images called for %(count)d image(s) of job '
                 '%(job)s', {'count': len(images), 'job': ctxt.job_id})
        # NOTE: an older conductor says nothing: then late is 0.
        late = ctxt.seconds_late()
        if late > CONF.agent.clock_skew_allowance:
            LOG.warning('Dropping cache_images of job %(job)s: it waited in '
                        'the queue %(late)ds beyond the time the conductor '
                        'stopped waiting for it',
                        {'job': ctxt.job_id, 'late': late})
            return [objects.HostImageResult(
                host=self.host, image_id=spec.id,
                state=objects.HostImageState.SKIPPED,
                reason='request expired in the agent queue')
                for spec in images]
        return self.cache.ensure_all(images)
