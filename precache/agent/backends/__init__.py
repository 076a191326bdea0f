"""Image backends: where the bytes of an image come from.

Loaded with stevedore from the ``precache.agent.backends`` namespace in the
order of ``[agent] enabled_backends``; the first that can serve an image
fetches it.
"""

from __future__ import annotations

from typing import cast

from stevedore import named

from precache import exception
from precache.agent.backends.base import Backend
from precache.conf import CONF

NAMESPACE = 'precache.agent.backends'


def load(names: list[str] | None = None) -> list[Backend]:
    """Instantiate the enabled backends, in order; unknown names fail."""
    names = list(names if names is not None else CONF.agent.enabled_backends)
    missing: list[str] = []
    manager: named.NamedExtensionManager = named.NamedExtensionManager(
        NAMESPACE, names, invoke_on_load=True, name_order=True,
        on_missing_entrypoints_callback=missing.extend)
    if missing:
        raise exception.ConfigInvalid(
            reason='unknown backend(s) in [agent] enabled_backends: %s'
                   % ', '.join(sorted(missing)))
    return [cast(Backend, ext.obj) for ext in manager]
