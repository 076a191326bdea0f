from oslo_config import cfg

group = cfg.OptGroup(
    'conductor', title='Conductor options',
    help='How the conductor fans a job out to the agents of its hosts.')

opts: list[cfg.Opt] = [
    cfg.IntOpt('max_concurrent_hosts',
               default=10, min=1,
               help='Maximum number of hosts the conductor asks to cache '
                    'images at the same time, across all jobs it runs. '
                    'Higher values finish big aggregates sooner but put '
                    'that many simultaneous downloads on the image '
                    'service and the network (Nova\'s '
                    '[image_cache] precache_concurrency defaults to 1). '
                    'A job may ask for less, never for more.'),
    cfg.IntOpt('max_concurrent_hosts_per_cell',
               default=0, min=0,
               help='Maximum number of hosts of one cell worked on at the '
                    'same time; 0 means only max_concurrent_hosts applies. '
                    'Use it to protect the message bus and uplink of each '
                    'cell (an edge site, a rack) while other cells proceed.'),
    cfg.IntOpt('max_concurrent_jobs',
               default=8, min=1,
               help='Jobs a conductor runs at once; later jobs wait in '
                    'state pending. All running jobs share '
                    'max_concurrent_hosts.'),
    cfg.IntOpt('host_call_timeout',
               default=1800, min=1,
               help='Hard limit, in seconds, for one host to cache all the '
                    'images of a job (Nova: long_rpc_timeout). A host '
                    'still working after that is recorded as an error; '
                    'raise it for very large images over slow links.'),
    cfg.IntOpt('call_monitor_timeout',
               default=60, min=2,
               help='Seconds without a heartbeat from a working agent '
                    'after which its call is abandoned and the host is '
                    'recorded as an error. Agents send heartbeats every '
                    'half of this, so a killed agent is noticed in about '
                    'this time instead of host_call_timeout.'),
    cfg.IntOpt('agent_ping_timeout',
               default=10, min=1,
               help='Seconds to wait for an agent to answer the ping sent '
                    'before its work starts. An agent that does not answer '
                    'is recorded as skipped (agent not responding) and '
                    'holds a fan-out slot for at most this long.'),
    cfg.IntOpt('peer_timeout',
               default=10, min=1,
               help='Seconds to wait for the conductor running a job to '
                    'answer a cancel forwarded to it (a cancel may reach '
                    'any conductor; the one running the job stops '
                    'starting its hosts at once). Past this, that '
                    'conductor is taken for down and the job is cancelled '
                    'in the job store directly.'),
    cfg.BoolOpt('always_ping_agents',
                default=False,
                help='Ping every agent before its call. By default an '
                     'agent whose heartbeat arrived within the last '
                     '[registry] heartbeat_interval is called at once: '
                     'its liveness is known, and the ping would double '
                     'the round trips of every host (the bound of big '
                     'fan-outs). Agents never heard of, or silent for '
                     'longer, are always pinged first.'),
    cfg.IntOpt('host_attempts',
               default=3, min=1, max=10,
               help='Attempts at a host within one job when it fails for '
                    'a transient reason (agent down or not responding, '
                    'unreachable, stopped responding, timed out); other '
                    'failures (hash mismatch, no space, unsupported, the '
                    'agent\'s own errors) are never retried. Attempts wait '
                    'host_retry_delay, then twice that and so on, plus '
                    'jitter, without holding a fan-out slot, and never '
                    'start after the job\'s deadline, a cancel or a '
                    'conductor stop. More attempts ride out longer bus or '
                    'agent outages (an agent silent while the broker '
                    'restarts) but keep a job with a really dead host '
                    'running longer before it ends; 1 turns retries off. '
                    'A job may ask for fewer (option host_attempts), never '
                    'for more.'),
    cfg.FloatOpt('host_retry_delay',
                 default=10.0, min=0.1, max=600.0,
                 help='Seconds before a host\'s second attempt; each '
                      'further one waits twice as long (at most 300 s), '
                      'plus a random share of this so that hosts that '
                      'failed together are not retried in step. Cover the '
                      'outages worth riding out: with host_attempts 3 the '
                      'third attempt starts 3 to 5 times this after the '
                      'first one failed.'),
    cfg.IntOpt('window_grace',
               default=900, min=0,
               help='Seconds a host already working when its job\'s '
                    'maintenance window closes (job option deadline or '
                    'window) may go on before the conductor stops waiting '
                    'for it; its rows then end error (window closed, '
                    'abandoned after grace). Hosts not started by the '
                    'deadline never start. 0 abandons them at the '
                    'deadline; a value at or above host_call_timeout lets '
                    'them finish. An abandoned agent still completes the '
                    'image it is fetching (the next job finds it '
                    'existing), so keep this below the end of the real '
                    'window by about the time one image takes.'),
    cfg.IntOpt('refresh_age',
               default=86400, min=0,
               help='Reconcile (precache-manage reconcile, the consumer, '
                    'the periodic reconcile) runs an image again on a host '
                    'whose last success is older than this many seconds, '
                    'which touches the cache file and so resets Nova\'s '
                    'image cache expiry (remove_unused_original_minimum_age'
                    '_seconds, 24 h by default: keep this below it). '
                    '0 never refreshes: only missing images run.'),
    cfg.IntOpt('reconcile_interval',
               default=0, min=0,
               help='Seconds between periodic reconciles of the aggregates '
                    'in reconcile_aggregates; 0 turns the periodic '
                    'reconcile off. Each pass compares the desired images '
                    'of an aggregate (its precache:images metadata and '
                    'the images whose precache_aggregates property names '
                    'it) with the latest results and starts a job only '
                    'for what is missing or older than refresh_age, so a '
                    'host added later gets its images within one '
                    'interval. Several conductors share one pass per '
                    'interval through the job store.'),
    cfg.IntOpt('report_interval',
               default=10, min=1,
               help='Seconds between two writes of the conductor\'s '
                    'service row (precache-manage conductors list). Keep '
                    'it well below service_down_time.'),
    cfg.IntOpt('service_down_time',
               default=60, min=2,
               help='Seconds without a write of its service row after '
                    'which a conductor is taken for down: the other '
                    'conductors take over its jobs at once instead of '
                    'waiting for their leases to expire. Lower notices a '
                    'dead conductor sooner; a conductor whose writes are '
                    'merely slow (a busy database) is then taken for dead '
                    'sooner too, and loses its jobs to the others.'),
    cfg.IntOpt('lease_time',
               default=30, min=3,
               help='Seconds a conductor\'s lease on a job lasts; it '
                    'renews every lease it holds every third of this. A '
                    'job whose conductor died (or froze) is taken over by '
                    'another within lease_time + takeover_interval. Lower '
                    'resumes such jobs sooner but costs a renewal more '
                    'often, and a conductor paused longer than this (a '
                    'long stall of its host or database) loses its jobs; '
                    'its writes for them are then refused.'),
    cfg.IntOpt('takeover_interval',
               default=5, min=1,
               help='Seconds between two looks of a conductor for jobs '
                    'to take over: leases expired, conductors down, and '
                    'jobs a stopping conductor released. It also bounds '
                    'the handover after a graceful stop. Each look is one '
                    'indexed query.'),
    cfg.IntOpt('graceful_shutdown_timeout',
               default=60, min=0,
               help='Seconds a stopping conductor (SIGTERM) waits for the '
                    'agent calls it has in flight to end and be recorded '
                    'before it releases its jobs to the other conductors '
                    'and exits. Hosts still in flight past this are called '
                    'again by the conductor that takes the job over (the '
                    'agent answers existing once its fetch ends). 0 '
                    'releases at once.'),
    cfg.ListOpt('reconcile_aggregates',
                default=None,
                help='Aggregates (id, uuid or name) the periodic reconcile '
                     'looks at.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
