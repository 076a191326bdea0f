from oslo_config import cfg

from precache.conf import auth

group = cfg.OptGroup(
    'service_user', title='Service user',
    help='Credentials of precache\'s own service user. When a request '
         'carries a caller\'s token, a service token is sent with it '
         '(X-Service-Token), so Glance accepts the request even after the '
         'caller\'s token expires during a long job.')

opts: list[cfg.Opt] = [
    cfg.BoolOpt('send_service_user_token',
                default=False,
                help='Send a service token along with a caller\'s token '
                     '(needs auth options here and Glance\'s '
                     'service_token_roles to accept it).'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)
    auth.register_auth_opts(conf, group.name)


def list_opts() -> list[cfg.Opt]:
    return auth.add_auth_opts(opts)
