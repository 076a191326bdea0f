"""Option listing for oslo-config-generator (entry point oslo.config.opts)."""

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

#: Groups listed only as a template for dynamic groups (one per schedule);
#: they are not registered as such.
TEMPLATE_GROUPS = ('schedule:name',)

# NOTE: in ABC order by group, DEFAULT first, as the sample file shows them.
_opts: list[tuple[str, list[cfg.Opt]]] = [
    ('DEFAULT', default.list_opts()),
    ('agent', agent.list_opts()),
    ('api', api.list_opts()),
    ('cells', cells.list_opts()),
    ('ceph', ceph.list_opts()),
    ('conductor', conductor.list_opts()),
    ('consumer', consumer.list_opts()),
    ('database', database.list_opts()),
    ('desired_state', desired_state.list_opts()),
    ('glance', glance.list_opts()),
    ('image_service', image_service.list_opts()),
    ('inventory', inventory.list_opts()),
    ('notifications', notifications.list_opts()),
    ('nova', nova.list_opts()),
    ('rbd_store', rbd_store.list_opts()),
    ('registry', registry.list_opts()),
    # NOTE: a template: each schedule listed in [schedules] names has a
    # group [schedule:<name>] with these options.
    ('schedule:name', schedules.schedule_opts),
    ('schedules', schedules.list_opts()),
    ('service_user', service_user.list_opts()),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(group, list(options)) for group, options in _opts]
