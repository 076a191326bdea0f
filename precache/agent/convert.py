"""Convert a verified image file to raw with ``qemu-img`` (Debian qemu-utils).

Nova's ``force_raw_images`` keeps ``_base`` files raw; an image that Glance
holds as qcow2 (or vmdk, vdi, vhd, vhdx) is verified as Glance holds it,
then converted. Like Nova, the image is inspected first under resource
limits and refused when it is not what Glance says or refers to another
file (a backing file or an external data file would let an image read the
host's files).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

from precache import exception, objects
from precache.agent import space
from precache.conf import CONF

#: Glance disk_format → qemu-img format name, for the formats converted.
QEMU_FORMATS = {'qcow2': 'qcow2', 'vmdk': 'vmdk', 'vdi': 'vdi',
                'vhd': 'vpc', 'vhdx': 'vhdx'}

#: Like Nova: qemu-img info of an untrusted image under CPU and memory caps.
_INFO_LIMITS = ['prlimit', '--cpu=30', '--as=%d' % (1024 ** 3)]


def needs_conversion(image: objects.ImageSpec) -> bool:
    """Whether the file store keeps ``image`` converted to raw."""
    return bool(CONF.agent.force_raw_images
                and image.disk_format in QEMU_FORMATS)


def _fail(image: objects.ImageSpec, reason: str) -> exception.BackendError:
    return exception.ImageFetchFailed(image=image.id,
                                      reason='converting to raw: ' + reason)


def to_raw(image: objects.ImageSpec, source: str, dest: str) -> int:
    """Write ``source`` (verified, in ``image.disk_format``) to ``dest`` as
    a raw, sparse, fsynced file; returns its size.

    :raises: ImageFetchFailed when qemu-img is missing, the image is not
        what its disk_format says, has a backing or data file, or the
        conversion fails; CacheStoreError when the raw file does not fit
        (need: the virtual size).
    """
    fmt = QEMU_FORMATS[image.disk_format or '']
    if not shutil.which('qemu-img'):
        raise _fail(image, 'qemu-img not found (install qemu-utils)')
    try:
        info = json.loads(_run(image, 'qemu-img info', [
            *_INFO_LIMITS, 'qemu-img', 'info', '--output=json', '-f', fmt,
            source], timeout=60))
    except ValueError as exc:
        raise _fail(image, 'qemu-img info: %s' % exc) from exc
    if info.get('format') != fmt:
        raise _fail(image, 'qemu-img sees %s, Glance says %s'
                    % (info.get('format'), image.disk_format))
    if info.get('backing-filename') or info.get('full-backing-filename'):
        raise _fail(image, 'refusing an image with a backing file')
    data = (info.get('format-specific') or {}).get('data') or {}
    if data.get('data-file'):
        raise _fail(image, 'refusing an image with an external data file')
    try:
        _run(image, 'qemu-img convert', [
            'qemu-img', 'convert', '-f', fmt, '-O', 'raw', source, dest],
            timeout=None)
    except exception.ImageFetchFailed as exc:
        # NOTE: LC_ALL=C: qemu-img says strerror(ENOSPC) in English.
        if os.strerror(errno.ENOSPC) not in str(exc):
            raise
        raise space.write_error(
            image.id, dest, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
            info.get('virtual-size')) from exc
    try:
        fd = os.open(dest, os.O_RDONLY)
        try:
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)
    except OSError as exc:
        raise _fail(image, 'syncing %s: %s' % (dest, exc)) from exc


def _run(image: objects.ImageSpec, what: str, argv: list[str],
         timeout: float | None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True,
                              timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL,
                              env=dict(os.environ, LC_ALL='C'))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _fail(image, '%s: %s' % (what, exc)) from exc
    if done.returncode:
        raise _fail(image, '%s: %s' % (what, (done.stderr or done.stdout
                                              or 'exit %d' % done.returncode
                                              ).strip()))
    return done.stdout
