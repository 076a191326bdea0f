"""precache-consumer: turns Glance and Nova notifications into jobs."""

from __future__ import annotations

import sys

from precache import rpc, service
from precache.cmd import guarded, wait_for_signal
from precache.conf import CONF
from precache.consumer.service import ConsumerService


@guarded
def main() -> None:
    service.prepare_service(sys.argv)
    service.check_config('precache-consumer')
    rpc.check_reachable(CONF)
    rpc.check_reachable(CONF, rpc.notification_url(CONF))
    consumer = ConsumerService(rpc.get_transport(CONF),
                               rpc.get_notification_transport(CONF))
    consumer.start()
    service.freeze_startup_objects()
    try:
        wait_for_signal()
    finally:
        consumer.stop()
        consumer.wait()
        rpc.cleanup()


if __name__ == '__main__':
    main()
