"""precache-agent: makes images resident on this compute host."""

from __future__ import annotations

import sys

from precache import rpc, service
from precache.agent.service import AgentService
from precache.cmd import guarded, wait_for_signal
from precache.conf import CONF


@guarded
def main() -> None:
    service.prepare_service(sys.argv)
    service.check_config('precache-agent')
    rpc.check_reachable(CONF)
    agent = AgentService(rpc.get_transport(CONF))
    agent.start()
    service.freeze_startup_objects()
    try:
        wait_for_signal()
    finally:
        agent.stop()
        agent.wait()
        rpc.cleanup()


if __name__ == '__main__':
    main()
