"""Option listing for oslo-config-generator (entry point oslo.config.opts)."""

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

# NOTE: in ABC order by group, DEFAULT first, as the sample file shows them.
_opts: list[tuple[str, list[cfg.Opt]]] = [
    ('DEFAULT', default.list_opts()),
    ('agent', agent.list_opts()),
    ('api', api.list_opts()),
    ('conductor', conductor.list_opts()),
    ('database', database.list_opts()),
    ('image_service', image_service.list_opts()),
    ('inventory', inventory.list_opts()),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(group, list(options)) for group, options in _opts]
