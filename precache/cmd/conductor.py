"""precache-conductor: accepts jobs and fans them out to the agents."""

from __future__ import annotations

import logging
import os
import sys

from precache import rpc, service
from precache.cmd import guarded, wait_for_signal
from precache.conductor.service import ConductorService
from precache.conf import CONF


@guarded
def main() -> None:
    service.prepare_service(sys.argv)
    service.check_config('precache-conductor')
    rpc.check_reachable(CONF)
    conductor = ConductorService(rpc.get_transport(CONF))
    conductor.start()
    service.freeze_startup_objects()
    try:
        wait_for_signal()
    finally:
        conductor.stop()
        conductor.wait()
        rpc.cleanup()
        if not conductor.drained:
            # NOTE: calls still in flight past graceful_shutdown_timeout:
            # their jobs are released; do not wait for their threads.
            logging.shutdown()
            os._exit(0)


if __name__ == '__main__':
    main()
