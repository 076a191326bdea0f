"""[ceph]: the Ceph clusters an agent reaches.

Glance locations name their cluster by fsid (``rbd://<fsid>/<pool>/
<image>/<snapshot>``); an agent serves a location only from a configured
cluster with that fsid. The main cluster is described in ``[ceph]``
itself (``conf_file``, ``user``, ``keyring``, ``fsid``); each further one,
named in ``[ceph] other_clusters``, has a group ``[ceph:<name>]`` with the
same four options, registered when first read (its name comes from the
configuration itself).
"""

from oslo_config import cfg

#: The name of the cluster described in [ceph] itself.
DEFAULT_CLUSTER = 'default'
CLUSTER_GROUP_PREFIX = 'ceph:'

group = cfg.OptGroup(
    'ceph', title='Ceph clusters',
    help='The Ceph clusters this agent may read images from (backends '
         'rbd-clone and rbd-export) and write them to (store rbd).')


def _cluster_opts(main: bool) -> list[cfg.Opt]:
    return [
        cfg.StrOpt('conf_file',
                   help='ceph.conf of the main cluster (usually the one '
                        'Glance stores images in, and the one holding the '
                        'pool of an RBD-backed compute); its monitors, and '
                        'its keyring unless given below. Unset: no main '
                        'cluster, and without other_clusters the rbd '
                        'backends report every image unsupported.'
                   if main else 'ceph.conf of this cluster.'),
        cfg.StrOpt('user',
                   help='Ceph user (without "client."); librados\' default '
                        '(admin) when unset. It needs read access to the '
                        'pools of the images (Glance\'s "images") and, for '
                        'the rbd store, write access to its pool (caps e.g. '
                        '"profile rbd pool=vms, profile rbd-read-only '
                        'pool=images").'),
        cfg.StrOpt('keyring',
                   help='Keyring file of the user; from conf_file when '
                        'unset.'),
        cfg.StrOpt('fsid',
                   help='The cluster\'s fsid. Optional: when set, locations '
                        'are matched to this cluster without connecting to '
                        'it, and a cluster answering with another fsid is '
                        'refused; when unset, it is read from the cluster '
                        'on first use.'),
    ]


opts: list[cfg.Opt] = _cluster_opts(main=True) + [
    cfg.ListOpt('other_clusters',
                help='Names of further clusters this agent can reach (e.g. '
                     'those of other sites), each described by a group '
                     '[ceph:<name>] with the options conf_file, user, '
                     'keyring and fsid, as above. An image location '
                     'rbd://<fsid>/... is served only by the cluster with '
                     'that fsid (Nova ignores the fsid on its download '
                     'path); a location on none of them is an error.'),
    cfg.IntOpt('connect_timeout',
               default=5, min=1, max=300,
               help='Seconds to wait for a cluster\'s monitors when '
                    'connecting (Nova\'s rbd_connect_timeout). A cluster '
                    'that does not answer in time fails only the images '
                    'that need it.'),
    cfg.IntOpt('op_timeout',
               default=60, min=0, max=3600,
               help='Seconds after which a single RADOS operation (one '
                    'read or write of an object, one monitor command) '
                    'fails instead of waiting (rados_osd_op_timeout and '
                    'rados_mon_op_timeout). With 0, an export from a '
                    'cluster whose OSD went away waits until it comes '
                    'back; a value too low fails exports from a merely '
                    'slow cluster.'),
    cfg.IntOpt('export_concurrency',
               default=8, min=1, max=64,
               help='Reads in flight per image during an export, each '
                    'with a buffer of export_chunk_size. Fewer leave the '
                    'OSDs idle; more only add memory. While verifying, at '
                    'most 4 are used: the hash (one core) is then the '
                    'limit and 4 reads keep ahead of it.'),
    cfg.IntOpt('export_chunk_size',
               default=2048, min=64, max=65536,
               help='Size in KiB of each read during an export. Memory '
                    'per image is about (reads in flight + 2) times this, '
                    'plus as much inside librbd; 2 MiB measured as fast as '
                    '4 MiB (the RBD object size) at half the memory.'),
]

#: The options of each group ``[ceph:<name>]``.
cluster_opts: list[cfg.Opt] = _cluster_opts(main=False)


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def cluster_group(conf: cfg.ConfigOpts,
                  name: str) -> cfg.ConfigOpts.GroupAttr:
    """The options of cluster ``name`` ([ceph] itself for the default)."""
    if name == DEFAULT_CLUSTER:
        return conf.ceph
    group_name = CLUSTER_GROUP_PREFIX + name
    conf.register_group(cfg.OptGroup(
        group_name, title='Ceph cluster %s' % name))
    conf.register_opts(cluster_opts, group=group_name)
    return conf[group_name]


def list_opts() -> list[cfg.Opt]:
    return opts
