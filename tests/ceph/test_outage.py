"""An OSD that dies mid-export: an error within the op timeout, nothing
left. On a cluster of its own, so the session's cluster stays healthy."""

from __future__ import annotations

import os
import signal
import threading
import time

from precache import objects
from precache.agent.backends.rbd import RbdExportBackend
from precache.agent.cache import ImageCache
from precache.agent.rbd import clusters
from precache.agent.stores.file import FileStore
from tests.ceph.helpers import CephCluster, MiB, missing_requirements

State = objects.HostImageState


def test_osd_stopped_mid_export(conf, tmp_path):
    why_not = missing_requirements()
    if why_not:
        import pytest

        pytest.fail(why_not)  # a skipped test would hide a broken set-up
    cluster = CephCluster('outage', str(tmp_path / 'ceph')).start('4G')
    try:
        image = cluster.make_image(64 * MiB, seed=21, pattern='data')
        conf.config(group='ceph', conf_file=cluster.conf, op_timeout=3)
        conf.config(group='agent', download_rate_limit=16 * 1024)
        conf.config(group='ceph', export_concurrency=2,
                    export_chunk_size=1024)
        cache = ImageCache('host-1', FileStore(), [RbdExportBackend()])
        cache.start()
        temp = cache.store.temp_path(image.id)
        results: list[objects.HostImageResult] = []
        worker = threading.Thread(target=lambda: results.append(
            cache.ensure(image.spec())))
        worker.start()
        deadline = time.monotonic() + 20
        while not (os.path.exists(temp) and os.path.getsize(temp) > 0):
            assert time.monotonic() < deadline, 'export did not start'
            time.sleep(0.02)
        os.kill(cluster.pids()['osd.0'], signal.SIGKILL)
        killed = time.monotonic()
        worker.join(60)
        [result] = results
        assert result.state is State.ERROR
        assert 'timed out' in result.reason, result.reason
        assert time.monotonic() - killed < 20
        assert os.listdir(cache.store.base_dir) == []

        # The script's start is idempotent: it restarts just the OSD. The
        # agent dropped the connection that timed out (a librados client
        # does not find the restarted OSD by itself), so a rerun works.
        mon = cluster.pids()['mon.a']
        cluster.start()
        assert cluster.pids()['mon.a'] == mon
        conf.config(group='agent', download_rate_limit=0)
        result = cache.ensure(image.spec())
        assert result.state is State.CACHED, result.reason
    finally:
        clusters.shutdown_all()
        cluster.stop()
