"""Image backends: where the bytes of an image come from.

Loaded with stevedore from the ``precache.agent.backends`` namespace in the
order of ``[agent] enabled_backends``; the first that can serve an image
fetches it.
"""

from __future__ import annotations

from precache import plugins
from precache.agent.backends.base import Backend
from precache.conf import CONF


def load(names: list[str] | None = None) -> list[Backend]:
    """Instantiate the enabled backends, in order; unknown names fail."""
    loaded: list[Backend] = plugins.load_ordered(
        plugins.AGENT_BACKENDS,
        list(names if names is not None else CONF.agent.enabled_backends))
    return loaded
