from oslo_config import cfg

from precache.conf import auth

group = cfg.OptGroup(
    'glance', title='Glance (image service) client',
    help='How the conductor validates images in Glance and how agents '
         'download them (backend glance-http). keystoneauth1 options: '
         'auth_type and its options, session (TLS, timeout) and adapter '
         '(service_type, valid_interfaces, region_name, endpoint_override). '
         'With no auth_type, endpoint_override is required and requests '
         'carry no token (a Glance without Keystone).')

opts: list[cfg.Opt] = [
    cfg.IntOpt('num_retries',
               default=3, min=0, max=20,
               help='Retries of one Glance request after a connection '
                    'error or a 5xx answer, with exponential backoff '
                    '(Nova\'s [glance] num_retries). For downloads it also '
                    'bounds how often a broken stream is resumed; a run '
                    'that makes progress starts counting again.'),
    cfg.FloatOpt('retry_delay',
                 default=1.0, min=0.0, max=60.0,
                 help='First backoff in seconds; it doubles on every '
                      'retry, up to 30 s. Longer rides out a Glance '
                      'restart, shorter fails faster.'),
    cfg.IntOpt('batch_size',
               default=50, min=1, max=500,
               help='Image ids validated in one list request '
                    '(GET /v2/images?id=in:...). Larger batches mean '
                    'fewer round trips but longer URLs; proxies in front '
                    'of Glance may reject URLs above ~8 KiB (about 200 '
                    'ids).'),
    cfg.IntOpt('download_restarts',
               default=3, min=0, max=20,
               help='Times a download whose stream broke may start over '
                    'from byte 0 when Glance refuses to resume it (its '
                    'rbd store answers 400 to every Range; its file store '
                    'resumes with 206 and never needs this). Each restart '
                    'transfers and hashes the image again; the result '
                    'says how many there were. 0: fail at the first break '
                    'that cannot be resumed.'),
    cfg.IntOpt('read_timeout',
               default=60, min=1,
               help='Seconds a download may wait for the next bytes '
                    'before the stream counts as broken and is resumed.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)
    auth.register_auth_opts(conf, group.name, service_type='image')


def list_opts() -> list[cfg.Opt]:
    return auth.add_auth_opts(opts, service_type='image')
