from oslo_config import cfg

group = cfg.OptGroup('database', title='Job store',
                     help='Where jobs and their per-host results live.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('connection',
               secret=True,
               help='SQLAlchemy URL of the job store, e.g. '
                    'postgresql+psycopg2://precache:secret@db/precache or '
                    'mysql+pymysql://precache:secret@db/precache (MariaDB, '
                    'Galera or MySQL; pip install precache[mysql]). '
                    'Defaults to an SQLite file, '
                    '<state_path>/precache.sqlite, '
                    'which suits a single conductor; several conductors '
                    'need a shared server database.'),
    cfg.IntOpt('max_deadlock_retries',
               default=5, min=0, max=20,
               help='How many times a job store transaction that lost a '
                    'lock race (a deadlock or lock wait timeout; on Galera, '
                    'any write conflict between two nodes) is run again, '
                    'after a random wait of up to 0.1 s, doubling with '
                    'each attempt up to 2 s. '
                    'More rides out busier clusters; each retry delays the '
                    'write, and once they run out the write fails and the '
                    'job records why.'),
    cfg.IntOpt('connection_recycle_time',
               default=3600, min=1,
               help='Seconds after which a pooled connection to a server '
                    'database is replaced rather than reused. Keep it below '
                    'the idle timeout of the server (MySQL wait_timeout) '
                    'and of any proxy in front of it (HAProxy before '
                    'Galera): connections are also checked before use, '
                    'but a recycled one costs no failed check. Lower '
                    'reconnects more often.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
