from oslo_config import cfg

group = cfg.OptGroup(
    'consumer', title='precache-consumer',
    help='The consumer listens to Glance and Nova notifications on '
         '[oslo_messaging_notifications] transport_url (default: [DEFAULT] '
         'transport_url) and asks a conductor, over [DEFAULT] '
         'transport_url, for the jobs they call for. See '
         'docs/notifications.md.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('pool',
               default='precache-consumer',
               help='oslo.messaging listener pool: the name of the queue '
                    'the consumer reads. Consumers with one pool name '
                    'share the notifications (each is handled by one of '
                    'them); a pool of its own keeps precache from taking '
                    'notifications away from other listeners of the same '
                    'topic, such as Ceilometer.'),
    cfg.ListOpt('topics',
                default=['notifications'],
                help='Topics to listen to (their .info priority). Glance '
                     'and Nova send to "notifications" by default; Nova\'s '
                     'versioned notifications ([notifications] '
                     'notification_format = versioned or both) go to '
                     '"versioned_notifications". With "both", listen to '
                     'one of the two: each event arrives in both forms.'),
    cfg.ListOpt('exchanges',
                default=['glance', 'nova'],
                help='Exchanges to listen on: each service sends to its '
                     'own control_exchange.'),
    cfg.IntOpt('conductor_timeout',
               default=60, min=1,
               help='Seconds to wait for a conductor to accept a job. '
                    'Accepting one validates its images with Glance and '
                    'reads the aggregate from Nova, so allow for both.'),
    cfg.IntOpt('requeue_delay',
               default=10, min=0,
               help='Seconds to hold a notification that could not be '
                    'handled because no conductor answered (or a '
                    'dependency was unavailable) before handing it back '
                    'to the queue for another try. Requests a conductor '
                    'refuses (bad image, unknown aggregate) are logged '
                    'and dropped, never retried.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
