from oslo_config import cfg

group = cfg.OptGroup(
    'api', title='API service options',
    help='precache-api: the Nova-compatible POST /os-aggregates/{id}/images '
         'and the job API.')

opts: list[cfg.Opt] = [
    cfg.HostAddressOpt('host_ip',
                       default='0.0.0.0',
                       help='Address precache-api (the built-in server) '
                            'listens on. Under gunicorn or uwsgi their own '
                            'bind setting applies instead.'),
    cfg.PortOpt('port',
                default=8780,
                help='Port precache-api (the built-in server) listens on.'),
    cfg.IntOpt('server_threads',
               default=32, min=1, max=1024,
               help='Requests the built-in server handles at once. Each '
                    'waits on the conductor over RPC, so this bounds the '
                    'RPC calls in flight from this process; beyond it, '
                    'connections wait in the listen queue.'),
    cfg.IntOpt('client_timeout',
               default=30, min=1, max=3600,
               help='Seconds a client of the built-in server has to send '
                    'its whole request (line, headers, body) and, later, '
                    'to take each write of the answer; then the '
                    'connection is closed. A stalled or slow client holds '
                    'a connection (never a request slot) this long. '
                    'Shorter frees connections sooner but cuts off '
                    'clients on slow links.'),
    cfg.IntOpt('max_connections',
               default=256, min=1, max=10000,
               help='Connections the built-in server holds open at once, '
                    'each with a thread of its own (reading a request, '
                    'waiting for a slot or being answered); beyond it, '
                    'new connections wait in the listen queue. Higher '
                    'tolerates more slow clients at the cost of threads.'),
    cfg.StrOpt('auth_strategy',
               default='keystone',
               choices=[('keystone', 'keystonemiddleware auth_token '
                         'validates every token ([keystone_authtoken])'),
                        ('noauth', 'no authentication: every caller is an '
                         'admin. Only for the embedded mode and tests; '
                         'logged loudly at start-up')],
               help='How callers are authenticated.'),
    cfg.IntOpt('max_request_body_size',
               default=114688, min=1024,
               help='Largest request body accepted, in bytes; larger ones '
                    'get 413 before authentication or parsing. The default '
                    'is Nova\'s (about 2,000 image ids in one request).'),
    cfg.IntOpt('max_limit',
               default=1000, min=1,
               help='Most jobs one page of GET /jobs returns, whatever '
                    'limit the caller asks for. Larger pages mean fewer '
                    'requests but bigger RPC replies and responses.'),
    cfg.IntOpt('default_limit',
               default=50, min=1,
               help='Jobs per page of GET /jobs when the caller gives no '
                    'limit (capped by max_limit).'),
    cfg.IntOpt('rpc_timeout',
               default=60, min=1,
               help='Seconds to wait for a conductor to answer. A request '
                    'whose conductor does not answer in time gets 503; it '
                    'validates images and writes the job, so allow for a '
                    'slow image service.'),
    cfg.URIOpt('public_endpoint',
               help='Base URL clients use to reach this API (e.g. '
                    'https://precache.example.com:8780), used in the '
                    'version document and Location headers. Unset: taken '
                    'from each request (enable [oslo_middleware] '
                    'enable_proxy_headers_parsing behind a TLS proxy).'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
