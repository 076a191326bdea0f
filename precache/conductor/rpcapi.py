"""Client side of the conductor RPC API (API, CLI, consumers → conductor)."""

from __future__ import annotations

from typing import Any

import oslo_messaging as messaging

from precache import context, objects, rpc

#: cache_images options a conductor older than 1.3 refuses.
OPTIONS_1_3 = frozenset({'deadline', 'window', 'hosts', 'dedupe', 'source'})


class ConductorAPI:
    """Calls to the ``precache-conductor`` topic (any conductor answers).

    API version history:

    |    1.0 - Initial version: cache_images, get_job, list_jobs.
    |    1.1 - Added cancel_job, get_resident_images; cache_images takes
    |          an optional caller (project_id, is_admin).
    |    1.2 - Added agent_heartbeat (a cast, sent by the agents' own
    |          client in precache.agent.heartbeat) and list_agents.
    |    1.3 - Added reconcile. cache_images options may carry deadline,
    |          window, hosts, dedupe and source.
    |    1.4 - cache_images' caller carries the caller's auth_token;
    |          Glance validates the images with it.
    |    1.5 - Added list_aggregates and get_aggregate (the inventory's
    |          aggregates, for Nova's GET /os-aggregates).
    |    1.6 - Added find_images (Glance's image lookup as the caller sees
    |          it, for novaclient with an endpoint override).
    |    (1.6) - Calls go through precache.rpc.Serializer: a
    |          RequestContext and Job objects on both sides; the dicts on
    |          the bus did not change, so no new version.
    """

    # NOTE: must stay equal to ConductorManager.RPC_API_VERSION.
    RPC_API_VERSION = '1.6'

    def __init__(self, transport: messaging.Transport,
                 timeout: int | None = None,
                 retry: int | None = None) -> None:
        """``retry`` bounds reconnection attempts (None: forever)."""
        self.client = rpc.get_client(transport, rpc.CONDUCTOR_TOPIC,
                                     self.RPC_API_VERSION)
        self.timeout = timeout
        self.retry = retry

    def _prepare(self, version: str, **kwargs: Any) -> Any:
        kwargs.setdefault('timeout', self.timeout)
        return self.client.prepare(version=version, retry=self.retry,
                                   **kwargs)

    @rpc.typed
    def cache_images(self, ctxt: context.RequestContext, aggregate: str,
                     image_ids: list[str],
                     options: dict[str, Any] | None = None,
                     caller: dict[str, Any] | None = None) -> objects.Job:
        """Validate and record a job, which then runs in the background.

        :param caller: the API caller's project_id and is_admin (1.1) and
            auth_token (1.4); images it may not see count as not found.
            The token is a credential: it travels in this payload only,
            is used while the call validates the images, and is never
            logged nor stored.
        :returns: the pending job.
        :raises: precache.exception.Invalid, NotFound, TemporaryFailure.
        """
        kwargs: dict[str, Any] = {'aggregate': aggregate,
                                  'image_ids': image_ids,
                                  'options': options or {}}
        version = '1.0'
        if caller is not None:
            kwargs['caller'] = caller
            version = '1.1'
        if set(options or ()) & OPTIONS_1_3:
            version = '1.3'
        if caller is not None and caller.get('auth_token'):
            version = '1.4'
        return self._prepare(version).call(ctxt, 'cache_images', **kwargs)

    @rpc.typed
    def get_job(self, ctxt: context.RequestContext, job_id: str,
                with_results: bool = True) -> objects.Job:
        """:raises: precache.exception.JobNotFound"""
        return self._prepare('1.0').call(ctxt, 'get_job', job_id=job_id,
                                         with_results=with_results)

    @rpc.typed
    def list_jobs(self, ctxt: context.RequestContext,
                  aggregate: str | None = None,
                  state: str | None = None, limit: int = 50,
                  marker: str | None = None) -> list[objects.Job]:
        """Newest first, without per-host rows."""
        return self._prepare('1.0').call(
            ctxt, 'list_jobs', aggregate=aggregate, state=state,
            limit=limit, marker=marker)

    @rpc.typed
    def cancel_job(self, ctxt: context.RequestContext, job_id: str,
                   server: str | None = None,
                   timeout: int | None = None) -> objects.Job:
        """Start no new host of the job; hosts in flight finish (1.1).

        :param server: the conductor to ask (conductors forward a cancel
            to the one running the job); by default any.
        :returns: the job, ``cancelled`` or still ``running`` until its
            hosts in flight finish.
        :raises: JobNotFound; Conflict when the job is already final.
        """
        kwargs: dict[str, Any] = {'server': server} if server else {}
        if timeout is not None:
            kwargs['timeout'] = timeout
        return self._prepare('1.1', **kwargs).call(ctxt, 'cancel_job',
                                                   job_id=job_id)

    def get_resident_images(self, ctxt: context.RequestContext,
                            aggregate: str) -> dict[str, Any]:
        """The images each host of an aggregate holds, as last reported.

        :returns: ``{'aggregate': {id, uuid, name}, 'hosts': [{host, cell,
            images: [{id, state, method, bytes, job_id, reported_at}]}]}``
        :raises: AggregateNotFound (1.1).
        """
        return self._prepare('1.1').call(ctxt, 'get_resident_images',
                                         aggregate=aggregate)

    def list_aggregates(self, ctxt: context.RequestContext
                        ) -> list[dict[str, Any]]:
        """Every aggregate of the inventory (1.5).

        :returns: dicts with id, name, uuid, hosts, metadata, created_at
            and updated_at (ISO 8601 or None).
        :raises: InventoryInvalid, ServiceUnavailable.
        """
        return self._prepare('1.5').call(ctxt, 'list_aggregates')

    def get_aggregate(self, ctxt: context.RequestContext,
                      aggregate: str) -> dict[str, Any]:
        """One aggregate by id, uuid or name, as list_aggregates (1.5).

        :raises: AggregateNotFound, InventoryInvalid, ServiceUnavailable.
        """
        return self._prepare('1.5').call(ctxt, 'get_aggregate',
                                         aggregate=aggregate)

    def find_images(self, ctxt: context.RequestContext,
                    ids: list[str] | None = None,
                    names: list[str] | None = None,
                    properties: dict[str, str] | None = None,
                    caller: dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
        """Images as Glance v2 lists them to ``caller`` (1.6).

        :param ids: only these (Glance's ``id=in:``); any status.
        :param names: only these names (``name=`` / ``name=in:``).
        :param properties: exact values of other fields or properties.
        :param caller: project_id, is_admin and auth_token, as for
            cache_images (the token is never logged nor stored).
        :returns: dicts with id, name, status, visibility, size,
            disk_format, container_format, created_at, updated_at.
        :raises: ServiceUnavailable.
        """
        return self._prepare('1.6').call(
            ctxt, 'find_images', ids=ids, names=names,
            properties=properties, caller=caller)

    def list_agents(self, ctxt: context.RequestContext
                    ) -> list[dict[str, Any]]:
        """The agent registry: each agent's last heartbeat and state (1.2).

        :returns: dicts with host, cell, version, rpc_version, backends,
            stores, free_bytes, cache_bytes, cache_images, first_seen,
            last_seen, silence (seconds) and state (up, down, too old).
        """
        return self._prepare('1.2').call(ctxt, 'list_agents')

    @rpc.typed
    def reconcile(self, ctxt: context.RequestContext, aggregate: str,
                  hosts: list[str] | None = None,
                  source: str | None = None) -> objects.Job | None:
        """Start a job for what the aggregate's hosts lack of its desired
        images (conductor/desired.py), deduplicated against a pending or
        running job that already covers it (1.3).

        :param hosts: only these hosts of the aggregate (e.g. one just
            added to it).
        :param source: recorded with the job (default ``reconcile``).
        :returns: the job (new or the covering one), or None when every
            host already has every desired image.
        :raises: AggregateNotFound, InvalidOption (a host not in the
            aggregate), TemporaryFailure.
        """
        kwargs: dict[str, Any] = {'aggregate': aggregate, 'hosts': hosts}
        if source is not None:
            kwargs['source'] = source
        return self._prepare('1.3').call(ctxt, 'reconcile', **kwargs)
