from oslo_config import cfg

from precache.conf import auth

group = cfg.OptGroup(
    'nova', title='Nova (compute) client',
    help='How the conductor reads aggregates from Nova (inventory driver '
         'nova). keystoneauth1 options: auth_type and its options, session '
         'and adapter (service_type, valid_interfaces, region_name, '
         'endpoint_override).')

opts: list[cfg.Opt] = [
    cfg.IntOpt('num_retries',
               default=3, min=0, max=20,
               help='Retries of one Nova request after a connection error '
                    'or a 5xx answer, with exponential backoff.'),
    cfg.FloatOpt('retry_delay',
                 default=1.0, min=0.0, max=60.0,
                 help='First backoff in seconds; it doubles on every '
                      'retry, up to 30 s.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)
    auth.register_auth_opts(conf, group.name, service_type='compute')


def list_opts() -> list[cfg.Opt]:
    return auth.add_auth_opts(opts, service_type='compute')
