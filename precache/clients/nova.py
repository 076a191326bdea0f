"""Nova's ``os-aggregates`` through python-novaclient on a keystoneauth1
session of ``[nova]``.

The microversion is negotiated once per client (version discovery at the
endpoint, as the ``nova`` CLI does with ``2.latest``) and capped at
:data:`MAX_VERSION`: 2.41 adds the aggregate ``uuid``, nothing later
changes aggregates. novaclient and keystoneauth errors become
:mod:`precache.exception` errors here; connection errors and 5xx answers
are retried with backoff (``[nova] num_retries``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from novaclient import api_versions
from novaclient import client as nova_client
from novaclient import exceptions as nova_exc

from precache import exception
from precache.clients import keystone
from precache.conf import CONF

LOG = logging.getLogger(__name__)

GROUP = 'nova'
#: Highest microversion we ask for; 2.41 adds ``uuid`` to aggregates.
MAX_VERSION = '2.41'
MIN_VERSION = '2.1'


@dataclasses.dataclass(frozen=True)
class NovaAggregate:
    """An aggregate as Nova shows it (the fields precache reads)."""

    id: int
    name: str
    hosts: tuple[str, ...]
    uuid: str | None
    metadata: dict[str, str]
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_resource(cls, resource: Any) -> NovaAggregate:
        info = resource.to_dict() if hasattr(resource, 'to_dict') else \
            dict(resource)
        return cls(id=int(info['id']), name=str(info['name']),
                   hosts=tuple(info.get('hosts') or ()),
                   uuid=info.get('uuid'),
                   metadata={str(k): str(v) for k, v in
                             (info.get('metadata') or {}).items()},
                   created_at=info.get('created_at'),
                   updated_at=info.get('updated_at'))


class NovaClient:
    """Reads aggregates; one negotiated novaclient per instance."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        adapter = keystone.get_adapter(GROUP)
        client = nova_client.Client(
            api_versions.APIVersion(MIN_VERSION),
            session=adapter.session,
            service_type=CONF.nova.service_type,
            service_name=CONF.nova.service_name,
            endpoint_type=CONF.nova.valid_interfaces,
            region_name=CONF.nova.region_name,
            endpoint_override=CONF.nova.endpoint_override,
            connect_retries=0)
        server = api_versions.discover_version(
            client, api_versions.APIVersion('2.latest'))
        wanted = min(server, api_versions.APIVersion(MAX_VERSION))
        client.api_version = wanted
        LOG.info('Nova API microversion %s (server up to %s)',
                 wanted.get_string(), server.get_string())
        return client

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._call('version discovery', self._build,
                                          translate_only=True)
            return self._client

    def _call(self, what: str, function: Any, *args: Any,
              translate_only: bool = False) -> Any:
        def once() -> Any:
            try:
                return function(*args)
            except nova_exc.ClientException as exc:
                if (getattr(exc, 'code', 0) or 0) >= 500:
                    raise keystone.Retryable('HTTP %s: %s' % (
                        exc.code, exc.message)) from exc
                raise

        try:
            return keystone.retrying(GROUP, 'Nova %s' % what, once)
        except nova_exc.NotFound:
            raise
        except nova_exc.UnsupportedVersion as exc:
            raise exception.ServiceUnavailable(
                service=keystone.describe(GROUP), reason=str(exc)) from exc
        except nova_exc.ClientException as exc:
            raise exception.ServiceUnavailable(
                service=keystone.describe(GROUP),
                reason='%s: HTTP %s: %s' % (what, exc.code, exc.message)
            ) from exc

    def check(self) -> None:
        """Authenticate, find Nova and negotiate now (start-up)."""
        keystone.check(GROUP)
        assert self.client is not None

    def get_aggregate(self, ref: str) -> NovaAggregate:
        """By integer id (one GET), else by uuid or name (list).

        :raises: AggregateNotFound, ServiceUnavailable.
        """
        client = self.client
        ref = str(ref).strip()
        if ref.isdigit():
            try:
                return NovaAggregate.from_resource(self._call(
                    'GET aggregate %s' % ref, client.aggregates.get, ref))
            except nova_exc.NotFound as exc:
                raise exception.AggregateNotFound(aggregate=ref) from exc
        for aggregate in self.list_aggregates():
            if ref in (aggregate.uuid, aggregate.name):
                return aggregate
        raise exception.AggregateNotFound(aggregate=ref)

    def list_aggregates(self) -> list[NovaAggregate]:
        """Every aggregate (one GET). :raises: ServiceUnavailable."""
        return [NovaAggregate.from_resource(resource) for resource in
                self._call('aggregate list', self.client.aggregates.list)]
