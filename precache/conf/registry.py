from oslo_config import cfg

group = cfg.OptGroup(
    'registry', title='Agent registry',
    help='Agents heartbeat the conductor (host, cell, version, backends, '
         'stores, free and used cache space); the conductor keeps the '
         'latest report of each in the job store and skips agents that '
         'went silent or are too old. Agent and conductor both read '
         'this group.')

opts: list[cfg.Opt] = [
    cfg.IntOpt('heartbeat_interval',
               default=20, min=1, max=3600,
               help='Agent side: seconds between two heartbeats. Shorter '
                    'notices a dead agent sooner (see agent_down_time) at '
                    'the cost of one message per agent per interval on the '
                    'bus and one row update in the job store.'),
    cfg.FloatOpt('heartbeat_jitter',
                 default=0.3, min=0.0, max=0.9,
                 help='Agent side: each interval is shortened by a random '
                      'fraction up to this, so thousands of agents started '
                      'together do not heartbeat in lockstep.'),
    cfg.IntOpt('agent_down_time',
               default=60, min=2,
               help='Conductor side: seconds without a heartbeat after '
                    'which an agent is down; its hosts are recorded as '
                    '"skipped (agent down)" without being called (in a '
                    'conductor\'s first agent_down_time, when it cannot '
                    'have heard every agent yet, after a ping that fails). '
                    'Keep it '
                    'at least twice heartbeat_interval, or a single lost '
                    'heartbeat marks a live agent down (Nova: '
                    'service_down_time).'),
    cfg.FloatOpt('status_cache_time',
                 default=1.0, min=0.0, max=60.0,
                 help='Conductor side: seconds for which a conductor '
                      'decides whether to call a host (agent down, too '
                      'old, stopped, heard recently) from one read of the '
                      'whole registry instead of one query per host. '
                      'Heartbeats and goodbyes this conductor receives '
                      'count at once; those another conductor receives '
                      'after up to this long, so a host whose agent just '
                      'stopped may still be called and then ends "error" '
                      'after call_monitor_timeout instead of "skipped". '
                      '0 queries the registry for every host: at 64 hosts '
                      'at once that query was a tenth of the conductor\'s '
                      'CPU, spent before each call.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
