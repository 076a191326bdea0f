from oslo_config import cfg

group = cfg.OptGroup('database', title='Job store',
                     help='Where jobs and their per-host results live.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('connection',
               secret=True,
               help='SQLAlchemy URL of the job store, e.g. '
                    'postgresql+psycopg2://precache:secret@db/precache. '
                    'Defaults to an SQLite file, '
                    '<state_path>/precache.sqlite, '
                    'which suits a single conductor; several conductors '
                    'need a shared server database.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
