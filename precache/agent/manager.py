"""Server side of the agent RPC API: thin endpoints over ImageCache."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import oslo_messaging as messaging

from precache import objects, version
from precache.agent.cache import ImageCache
from precache.conf import CONF

LOG = logging.getLogger(__name__)


def _seconds_late(abandoned_after: str | None) -> float:
    """How long ago the conductor stopped waiting (older conductors: 0)."""
    if not abandoned_after:
        return 0.0
    try:
        when = datetime.datetime.fromisoformat(abandoned_after)
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (objects.utcnow() - when).total_seconds()


class AgentManager:
    """RPC endpoint of one host's agent (topic ``precache-agent``)."""

    # NOTE: must stay equal to AgentAPI.RPC_API_VERSION (a test checks).
    RPC_API_VERSION = '1.0'

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, cache: ImageCache, cell: str | None = None) -> None:
        self.cache = cache
        self.host = cache.host
        self.cell = cell

    def ping(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        """Liveness and capabilities, for the conductor."""
        return {'host': self.host, 'cell': self.cell,
                'version': version.version_string,
                'rpc_version': self.RPC_API_VERSION,
                'backends': [b.name for b in self.cache.backends],
                'store': self.cache.store.describe()}

    def cache_images(self, ctxt: dict[str, Any],
                     images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Make ``images`` resident here.

        :param images: ImageSpec dicts, as the conductor read them from
            the image service.
        :returns: one HostImageResult dict per image, in order.
        """
        LOG.info('[req %(req)s] RPC cache_images called for %(count)d '
                 'image(s) of job %(job)s',
                 {'req': ctxt.get('request_id'), 'count': len(images),
                  'job': ctxt.get('job_id')})
        specs = [objects.ImageSpec.from_dict(image) for image in images]
        late = _seconds_late(ctxt.get('abandoned_after'))
        if late > CONF.agent.clock_skew_allowance:
            LOG.warning('[req %(req)s] Dropping cache_images of job %(job)s:'
                        ' it waited in the queue %(late)ds beyond the time '
                        'the conductor stopped waiting for it',
                        {'req': ctxt.get('request_id'),
                         'job': ctxt.get('job_id'), 'late': late})
            return [objects.HostImageResult(
                host=self.host, image_id=spec.id,
                state=objects.HostImageState.SKIPPED,
                reason='request expired in the agent queue').to_dict()
                for spec in specs]
        results = self.cache.ensure_all(specs, ctxt.get('request_id'))
        return [result.to_dict() for result in results]
