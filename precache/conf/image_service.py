from oslo_config import cfg

group = cfg.OptGroup(
    'image_service', title='Image service',
    help='Where the conductor validates images and reads their metadata '
         '(size, hashes, locations) before it calls any agent.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('driver',
               default='local',
               choices=[('local', 'a catalog file of local images'),
                        ('glance', 'Glance v2, see [glance]')],
               help='Image service driver.'),
    cfg.StrOpt('local_catalog',
               default='/var/lib/precache/images/catalog.json',
               help='Catalog of the local image service: a JSON list of '
                    'images with Glance\'s fields (id, name, status, size, '
                    'disk_format, checksum, os_hash_algo, os_hash_value, '
                    'locations, direct_url). Locations are file:// URLs, '
                    'paths (relative to the catalog\'s folder) or rbd:// '
                    'URLs.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
