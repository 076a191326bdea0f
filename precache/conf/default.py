import socket

from oslo_config import cfg

opts: list[cfg.Opt] = [
    cfg.StrOpt('host',
               default=socket.gethostname(),
               sample_default='<hostname>',
               help='Name of this host. An agent listens for requests '
                    'addressed to this name, so it must be the name the '
                    'inventory (Nova: the compute service host) uses for '
                    'this hypervisor.'),
    cfg.StrOpt('state_path',
               default='/var/lib/precache',
               help='Top-level directory for precache state: the default '
                    'SQLite job store and, in the all-in-one mode, the '
                    'per-host caches.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts)


def list_opts() -> list[cfg.Opt]:
    return opts
