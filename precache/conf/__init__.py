"""Configuration: one module per option group, registered on ``CONF``.

Import ``from precache.conf import CONF`` (the one spelling that guarantees
registration) and read options where they are used, not at import time.
"""

from oslo_config import cfg

from precache.conf import (
    agent,
    api,
    cells,
    ceph,
    conductor,
    consumer,
    database,
    default,
    desired_state,
    glance,
    image_service,
    inventory,
    notifications,
    nova,
    rbd_store,
    registry,
    schedules,
    service_user,
)

CONF = cfg.CONF

#: Every option module, in registration order (a fresh ConfigOpts that
#: should know precache's options registers these).
MODULES = (default, agent, api, ceph, cells, conductor, consumer, database,
           desired_state, glance, image_service, inventory, notifications,
           nova, rbd_store, registry, schedules, service_user)

for _module in MODULES:
    _module.register_opts(CONF)
