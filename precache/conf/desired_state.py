from oslo_config import cfg

group = cfg.OptGroup(
    'desired_state', title='Desired state',
    help='How aggregates and images say which images belong on which '
         'aggregate. Read by the conductor (reconcile, schedules) and by '
         'precache-consumer: keep them equal on both.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('aggregate_metadata_key',
               default='precache:images',
               help='Aggregate metadata key listing, comma-separated, the '
                    'ids of the images its hosts should hold.'),
    cfg.StrOpt('image_property',
               default='precache_aggregates',
               help='Glance image property naming, comma-separated, the '
                    'aggregates an image should be cached on.'),
    cfg.StrOpt('image_tag_prefix',
               default='precache:',
               help='Glance image tags starting with this name an '
                    'aggregate each (precache:gpu-hosts), as the property '
                    'does; one tag per aggregate. Empty: tags are '
                    'ignored.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
