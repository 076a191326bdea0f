from oslo_config import cfg

group = cfg.OptGroup(
    'cells', title='Cells',
    help='Cells as in Nova cells v2: each cell\'s hosts sit behind their '
         'own message bus. Agents of a cell set [DEFAULT] transport_url to '
         'their cell\'s bus and [agent] cell to its name; the conductor '
         'listens and calls on every bus listed here, within '
         '[conductor] max_concurrent_hosts and '
         'max_concurrent_hosts_per_cell.')

opts: list[cfg.Opt] = [
    cfg.MultiStrOpt('transport_url',
                    default=[], secret=True,
                    help='One "<cell name>=<transport URL>" per line '
                         '(repeat the option), e.g. '
                         'cell1=rabbit://precache:secret@mq-cell1:5672/. '
                         'A cell not listed uses [DEFAULT] transport_url. '
                         'When any cell is listed, a host whose cell is '
                         'unknown (its agent never reported one and the '
                         'inventory names none) is recorded as skipped '
                         'with that reason rather than guessed.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
