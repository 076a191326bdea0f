from oslo_config import cfg

group = cfg.OptGroup(
    'inventory', title='Inventory',
    help='Where the conductor learns which hosts form an aggregate and '
         'which cell each host is in.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('driver',
               default='static',
               choices=[('static', 'a YAML or JSON file, see static_file'),
                        ('nova', 'Nova\'s os-aggregates, see [nova]; cells '
                         'come from the agent registry')],
               help='Inventory driver.'),
    cfg.StrOpt('static_file',
               default='/etc/precache/inventory.yaml',
               help='File of the static inventory: cells with their hosts, '
                    'and aggregates (id, optional uuid, name, hosts). See '
                    'etc/precache/inventory.yaml.example.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
