from oslo_config import cfg

group = cfg.OptGroup(
    'agent', title='Agent options',
    help='The agent that makes images resident on one compute host.')

opts: list[cfg.Opt] = [
    cfg.StrOpt('cell',
               help='Name of the cell this host belongs to, reported to '
                    'the conductor; informational in the static inventory.'),
    cfg.StrOpt('instances_path',
               default='/var/lib/nova/instances',
               help='Nova\'s [DEFAULT] instances_path on this host. The '
                    'file store writes <instances_path>/<cache_subdirectory>'
                    '/<sha1(image id)>, the name the libvirt driver looks '
                    'for when it boots an instance.'),
    cfg.StrOpt('cache_subdirectory',
               default='_base',
               help='Nova\'s [image_cache] subdirectory_name.'),
    cfg.StrOpt('lock_path',
               help='Directory of the per-image external locks. Defaults '
                    'to <instances_path>/locks, where Nova\'s libvirt '
                    'driver locks the same base file while it fetches it '
                    'for a boot, so a boot and precache never write the '
                    'same file at once. Change it only together with Nova.'),
    cfg.StrOpt('lock_prefix',
               default='nova-',
               help='Prefix of the lock file names; Nova uses "nova-".'),
    cfg.ListOpt('enabled_backends',
                default=['file'],
                help='Backends tried in this order for each image; the '
                     'first one that can serve an image fetches it, and '
                     'the next is tried when it fails. Only backends listed '
                     'here are tried: with the default, an image without '
                     'a local file location ends "unsupported", never '
                     'downloaded from Glance. Available: file (local paths '
                     'and file:// locations), rbd-clone (copy-on-write '
                     'clone, store rbd only, same cluster), rbd-export '
                     '(verified sparse export from any cluster of [ceph] '
                     'clusters), glance-http (download from Glance with '
                     'the [glance] credentials, resumed where the store '
                     'allows; any image, store file only). Cheapest first, '
                     'glance-http last as the fallback, e.g. "rbd-export, '
                     'glance-http".'),
    cfg.StrOpt('store',
               default='file',
               choices=[('file', 'files in <instances_path>/_base, for '
                                 'images_type = raw, qcow2 or flat'),
                        ('rbd', 'RBD images in a pool, for images_type = '
                                'rbd; see [rbd_store]')],
               help='Where this host\'s image cache lives: Nova\'s '
                    '[libvirt] images_type decides. On an RBD-backed '
                    'compute a _base file would turn copy-on-write clones '
                    'into full imports, so use rbd there.'),
    cfg.BoolOpt('force_raw_images',
                default=True,
                help='Nova\'s [DEFAULT] force_raw_images: the file store '
                     'keeps images as raw files. An image in another '
                     'format (e.g. qcow2), whatever the backend, is verified '
                     'as Glance holds it, then converted with qemu-img into '
                     'the raw file; it needs twice its size in free space '
                     'while it is converted.'),
    cfg.IntOpt('max_concurrent_images',
               default=2, min=1, max=64,
               help='Images of one request processed at the same time on '
                    'this host. More overlaps slow sources; fewer keeps '
                    'the disk and the uplink calmer during the day.'),
    cfg.IntOpt('download_rate_limit',
               default=0, min=0,
               help='Cap on the rate at which one image is fetched, in '
                    'KiB/s; 0 means no limit. Use it on edge sites whose '
                    'WAN link must not be saturated (it applies per image, '
                    'so the host total is at most max_concurrent_images '
                    'times this).'),
    cfg.IntOpt('chunk_size',
               default=4096, min=64, max=65536,
               help='Read and write size in KiB while streaming an image. '
                    'Memory used per image in flight is about this.'),
    cfg.IntOpt('clock_skew_allowance',
               default=60, min=0,
               help='Seconds by which this host\'s clock may differ from '
                    'the conductor\'s. A request that waited in this '
                    'agent\'s queue (the agent was down) longer than the '
                    'conductor waits for it, plus this, is dropped instead '
                    'of being worked on for nobody.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(group)
    conf.register_opts(opts, group=group)


def list_opts() -> list[cfg.Opt]:
    return opts
