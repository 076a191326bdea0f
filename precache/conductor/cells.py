"""Per-cell message buses, as in Nova cells v2.

Each cell may have its own ``transport_url`` (``[cells] transport_url``,
``<cell>=<url>``); its agents listen on that bus and heartbeat over it.
The conductor keeps one transport, one agent client and one RPC server
per distinct bus: it calls a cell's hosts over the cell's bus and hears
the heartbeats of every cell. Cells not listed share ``[DEFAULT]
transport_url``.
"""

from __future__ import annotations

import logging

import oslo_messaging as messaging

from precache import exception, rpc
from precache.agent.rpcapi import AgentAPI
from precache.conf import CONF

LOG = logging.getLogger(__name__)


def parse_urls(values: list[str]) -> dict[str, str]:
    """``['cell1=rabbit://…', …]`` → ``{'cell1': 'rabbit://…'}``."""
    urls: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition('=')
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise exception.ConfigInvalid(
                reason='[cells] transport_url must be "<cell>=<url>", got '
                       '%r' % value.split('://')[0])
        if name in urls:
            raise exception.ConfigInvalid(
                reason='[cells] transport_url lists cell %s twice' % name)
        urls[name] = url
    return urls


class CellMap:
    """Transports and agent clients per cell; the default bus for others."""

    def __init__(self, default: messaging.Transport,
                 urls: dict[str, str] | None = None) -> None:
        self.urls = urls if urls is not None else parse_urls(
            CONF.cells.transport_url)
        self.default = default
        self._transports: dict[str, messaging.Transport] = {
            cell: rpc.get_transport(CONF, url)
            for cell, url in self.urls.items()}
        self._default_api = AgentAPI(default)
        self._apis = {cell: AgentAPI(transport)
                      for cell, transport in self._transports.items()}

    def transports(self) -> list[messaging.Transport]:
        """Every distinct bus, the default first."""
        distinct = [self.default]
        for transport in self._transports.values():
            if all(transport is not seen for seen in distinct):
                distinct.append(transport)
        return distinct

    def check(self) -> None:
        """Each cell's broker is reachable (one line naming the cell)."""
        for cell, url in self.urls.items():
            try:
                rpc.check_reachable(CONF, url)
            except exception.ServiceUnavailable as exc:
                raise exception.ServiceUnavailable(
                    service='message bus of cell %s' % cell,
                    reason=exc.kwargs.get('reason', str(exc))) from exc

    def agent_api(self, cell: str | None) -> AgentAPI:
        """The client that reaches hosts of ``cell`` (its own bus)."""
        return self._apis.get(cell or '', self._default_api)

    def skip_reason(self, host: str, cell: str | None) -> str | None:
        """With cells configured, a host of no known cell is not guessed."""
        if self.urls and not cell:
            return ('no cell known for this host (its agent never '
                    'reported one and the inventory names none)')
        return None
