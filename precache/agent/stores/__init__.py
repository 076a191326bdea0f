"""Cache stores: where a host's resident images live.

Loaded with stevedore from the ``precache.agent.stores`` namespace, the
one named by ``[agent] store``; every store implements
:class:`precache.agent.stores.base.Store`.
"""

from __future__ import annotations

from precache import plugins
from precache.agent.stores.base import Store
from precache.conf import CONF


def load(host: str | None = None, name: str | None = None) -> Store:
    """The store named by ``[agent] store`` (or ``name``) for ``host``."""
    store: Store = plugins.load_driver(plugins.AGENT_STORES,
                                       name or CONF.agent.store, host=host)
    return store
