"""The agent's heartbeat to the conductor's registry.

A cast every ``[registry] heartbeat_interval`` seconds, shortened by a
random jitter, with the host's report: cell, version, RPC version,
backends, stores, free bytes in the cache store and the cache's usage.
Casts never wait for a conductor, so a conductor restart costs nothing
but missed beats; the conductor marks an agent down after
``agent_down_time`` of silence.

The agent must not import the conductor package (import contract), so
the one method it sends has its own tiny client here, versioned against
the conductor API history in precache/conductor/rpcapi.py (1.2).
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import oslo_messaging as messaging

from precache import context, objects, rpc, version
from precache.agent.stores.base import Store
from precache.conf import CONF

LOG = logging.getLogger(__name__)

#: Conductor RPC version that added agent_heartbeat.
HEARTBEAT_VERSION = '1.2'


class RegistryAPI:
    """Casts ``agent_heartbeat`` to the conductor topic (any conductor)."""

    def __init__(self, transport: messaging.Transport) -> None:
        self.client = rpc.get_client(transport, rpc.CONDUCTOR_TOPIC,
                                     HEARTBEAT_VERSION)

    def heartbeat(self, ctxt: context.RequestContext,
                  report: dict[str, Any]) -> None:
        self.client.prepare(version=HEARTBEAT_VERSION, retry=0).cast(
            ctxt, 'agent_heartbeat', report=report)


class Heartbeater:
    """A thread casting the report of one agent until stopped."""

    def __init__(self, transport: messaging.Transport, host: str,
                 cell: str | None, rpc_version: str, backends: list[str],
                 store: Store) -> None:
        self.api = RegistryAPI(transport)
        self.host, self.cell, self.rpc_version = host, cell, rpc_version
        self.backends, self.store = backends, store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self) -> dict[str, Any]:
        description = dict(self.store.describe())
        used, images = self.store.usage()
        return {'host': self.host, 'cell': self.cell,
                'version': version.version_string,
                'rpc_version': self.rpc_version,
                'backends': list(self.backends), 'stores': [description],
                'free_bytes': description.get('free_bytes'),
                'cache_bytes': used, 'cache_images': images}

    def beat(self, stopping: bool = False) -> None:
        """Send one heartbeat now; failures are logged, never raised.

        ``stopping``: the goodbye of a clean stop, so the conductor skips
        this host at once instead of calling an agent that is gone.
        """
        report = self.report()
        # NOTE: casts from one agent may be handled out of order (the
        # conductor's threads, several conductors); the send time lets
        # the registry drop a heartbeat older than the goodbye it holds.
        # Conductors that predate it ignore the key.
        report['sent_at'] = objects.utcnow().isoformat()
        if stopping:
            report['stopping'] = True
        try:
            self.api.heartbeat(rpc.request_context(), report)
        except Exception as exc:  # noqa: BLE001 - next beat retries
            LOG.warning('Agent %(host)s: heartbeat failed: %(err)s',
                        {'host': self.host, 'err': exc})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            interval = CONF.registry.heartbeat_interval
            jitter = random.uniform(0, CONF.registry.heartbeat_jitter)  # noqa: S311
            self._stop.wait(interval * (1 - jitter))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name='heartbeat-%s' % self.host, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self.beat(stopping=True)
