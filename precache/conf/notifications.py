from oslo_config import cfg

group = cfg.OptGroup(
    'notifications', title='Notifications sent by the conductor',
    help='Nova-compatible aggregate.cache_images.{start,progress,end} and '
         'precache.job.* / precache.image.* events (docs/notifications.md). '
         'They go over [oslo_messaging_notifications] transport_url, which '
         'defaults to [DEFAULT] transport_url, to the exchange named by '
         '[DEFAULT] control_exchange (precache). The driver and topics of '
         '[oslo_messaging_notifications] are not read: these are.')

opts: list[cfg.Opt] = [
    cfg.BoolOpt('enabled',
                default=False,
                help='Send notifications. Off by default, as in Nova: '
                     'RabbitMQ keeps every notification in the topic\'s '
                     'queue until something consumes it, so turn this on '
                     'only where a consumer (a monitoring bridge, '
                     'Ceilometer, a workflow engine) reads them.'),
    cfg.StrOpt('driver',
               default='messagingv2',
               choices=[('messagingv2', 'the message bus, oslo.messaging '
                         '2.0 envelope (what OpenStack services send)'),
                        ('log', 'the conductor\'s log, one line per '
                         'notification, for trying consumers out')],
               help='Where notifications go.'),
    cfg.ListOpt('topics',
                default=['notifications'],
                help='Topics to send to; each notification goes to '
                     '<topic>.info on every one of them. One topic per '
                     'independent kind of consumer; several consumers of '
                     'one kind share a topic with an oslo.messaging pool.'),
    cfg.BoolOpt('image_events',
                default=True,
                help='Also send one precache.image.<state> event per image '
                     'and host (besides one progress event per host). '
                     'Each costs about 1 ms of the sender thread; a job of '
                     '1,000 hosts and 10 images sends 10,000 of them. Turn '
                     'off when consumers only need per-host progress.'),
    cfg.IntOpt('max_queued',
               default=10000, min=100,
               help='Notifications waiting for the sender thread. Jobs '
                    'never wait for the message bus: when the bus is slow '
                    'or down and this many are waiting, new ones are '
                    'dropped (and counted in a warning) instead.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
