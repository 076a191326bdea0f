"""Configuration: one module per option group, registered on ``CONF``.

Import ``from precache.conf import CONF`` (the one spelling that guarantees
registration) and read options where they are used, not at import time.
"""

from oslo_config import cfg

from precache.conf import (
    agent,
    api,
    conductor,
    database,
    default,
    image_service,
    inventory,
)

CONF = cfg.CONF

for _module in (default, agent, api, conductor, database, image_service,
                inventory):
    _module.register_opts(CONF)
