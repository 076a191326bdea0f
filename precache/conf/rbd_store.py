from oslo_config import cfg

group = cfg.OptGroup(
    'rbd_store', title='RBD cache store',
    help='The cache store of RBD-backed computes (Nova\'s [libvirt] '
         'images_type = rbd), used when [agent] store = rbd: a cached image '
         'is an RBD image <image id> with a protected snapshot "snap" in '
         'the compute\'s pool, the layout of Glance\'s RBD store, so '
         'instances can be cloned from it. No _base file is ever written.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('cluster',
               help='The cluster that holds the pool: a name in [ceph] '
                    'other_clusters; unset, the main cluster ([ceph] '
                    'conf_file).'),
    cfg.StrOpt('pool',
               default='vms',
               help='Pool of the cached images: Nova\'s [libvirt] '
                    'images_rbd_pool. An image whose location is on the '
                    'same cluster is cloned (copy-on-write, instant); one '
                    'on another cluster is copied, sparse and verified.'),
    cfg.IntOpt('lock_lease',
               default=30, min=5, max=3600,
               help='Seconds a per-image lock in the pool is held without '
                    'renewal. All computes of a cluster share the pool, so '
                    'the agents take a RADOS lock per image; it is renewed '
                    'while a fetch runs and lapses this long after an agent '
                    'died, letting another agent take over.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
