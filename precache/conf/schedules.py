from oslo_config import cfg

group = cfg.OptGroup(
    'schedules', title='Built-in schedules',
    help='Jobs the conductor starts by itself, like cron entries. Each '
         'name listed in [schedules] names has its own group '
         '[schedule:<name>] with the options shown under '
         '[schedule:name] below.')

opts: list[cfg.Opt] = [
    cfg.ListOpt('names',
                default=None,
                help='The schedules to run, each described by its group '
                     '[schedule:<name>]. Every conductor may list the same '
                     'schedules: each occurrence starts one job per '
                     'aggregate in all, claimed through the job store.'),
    cfg.IntOpt('check_interval',
               default=30, min=1, max=3600,
               help='Seconds between two looks at the schedules (and the '
                    'periodic reconcile). A run starts up to this late; '
                    'shorter costs one job store transaction per schedule '
                    'and aggregate each time.'),
]

#: The options of each ``[schedule:<name>]`` group.
schedule_opts: list[cfg.Opt] = [
    cfg.StrOpt('cron',
               help='When to run: a cron expression (minute hour '
                    'day-of-month month day-of-week, croniter syntax) in '
                    'the conductor\'s local time, e.g. "0 2 * * *".'),
    cfg.ListOpt('aggregates',
                default=None,
                help='Aggregates (id, uuid or name) to run on; one job '
                     'per aggregate.'),
    cfg.ListOpt('images',
                default=None,
                help='Image ids to make resident.'),
    cfg.StrOpt('image_tag',
               help='Also every active image carrying this Glance tag, '
                    'looked up when the schedule runs, so images tagged '
                    'later are included without a configuration change.'),
    cfg.DictOpt('image_properties',
                default=None,
                help='Also every active image whose properties have '
                     'exactly these values (key:value,key:value), looked '
                     'up when the schedule runs. With image_tag, images '
                     'must match both.'),
    cfg.StrOpt('window',
               help='Length of the maintenance window from each scheduled '
                    'time: seconds or like 2h, 90m. No host starts after '
                    'it closes (see [conductor] window_grace), and a run '
                    'missed while no conductor was up is made at start-up '
                    'only while its window is open. Without a window the '
                    'jobs have no deadline and a missed run is made at '
                    'the next start, however late.'),
    cfg.IntOpt('max_concurrent_hosts',
               min=1,
               help='Lower [conductor] max_concurrent_hosts for these jobs '
                    '(unset: the conductor\'s limit).'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


#: ``[schedule:<name>]``: one group per schedule.
SCHEDULE_GROUP_PREFIX = 'schedule:'


def register_schedule(conf: cfg.ConfigOpts, name: str) -> str:
    """Register ``[schedule:<name>]`` (a dynamic group); its name."""
    group_name = SCHEDULE_GROUP_PREFIX + name
    conf.register_opts(schedule_opts, group=group_name)
    return group_name


def list_opts() -> list[cfg.Opt]:
    return opts
