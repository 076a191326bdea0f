"""Server side of the conductor RPC API: thin endpoints over jobs."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import oslo_messaging as messaging
from oslo_utils import uuidutils

from precache import context, exception, objects, rpc
from precache.conductor import desired, images
from precache.conductor.jobs import JobRunner
from precache.conductor.registry import Registry
from precache.conductor.rpcapi import ConductorAPI
from precache.conductor.schedules import Scheduler
from precache.conf import CONF
from precache.db.schedules import ScheduleStore

LOG = logging.getLogger(__name__)


#: The shortest start of a job id looked up (as git's shortest).
MIN_JOB_ID_PREFIX = 4


def _unique_job_id(store: Any, prefix: str) -> str:
    prefix = prefix.strip().lower()
    if len(prefix) < MIN_JOB_ID_PREFIX:
        raise exception.Invalid(
            'Job id %r is too short: give at least %d characters'
            % (prefix, MIN_JOB_ID_PREFIX), reason='short job id')
    found = store.find_job_ids(prefix, limit=6)
    if not found:
        raise exception.JobNotFound(job=prefix)
    if len(found) > 1:
        raise exception.Invalid(
            'Job id %s is ambiguous: it starts %s%s; give more characters'
            % (prefix, ', '.join(found[:5]),
               ' and more' if len(found) > 5 else ''),
            reason='ambiguous job id')
    return found[0]


class ConductorManager:
    """RPC endpoint of a conductor (topic ``precache-conductor``)."""

    # NOTE: must stay equal to ConductorAPI.RPC_API_VERSION (a test checks).
    RPC_API_VERSION = '1.6'

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, runner: JobRunner,
                 registry: Registry | None = None,
                 scheduler: Scheduler | None = None,
                 peers: ConductorAPI | None = None) -> None:
        """``peers`` reaches the other conductors (to forward a cancel).

        :raises: Invalid when a configured schedule is unusable.
        """
        self.runner = runner
        self.peers = peers
        self.registry = registry
        self.scheduler = scheduler or Scheduler(
            runner, ScheduleStore(runner.store.engine))

    def start(self) -> None:
        self.runner.recover()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.runner.stop()

    @messaging.expected_exceptions(exception.Invalid, exception.NotFound,
                                   exception.TemporaryFailure)
    @rpc.typed
    def cache_images(self, ctxt: context.RequestContext, aggregate: str,
                     image_ids: list[str],
                     options: dict[str, Any] | None = None,
                     caller: dict[str, Any] | None = None
                     ) -> objects.Job:
        """Accept a job: make ``image_ids`` resident on ``aggregate``.

        ``caller`` holds the API caller's token: never log it.

        :returns: the recorded, pending job.
        :raises: Invalid (bad image list or option, image not active),
            NotFound (aggregate or image), TemporaryFailure.
        """
        LOG.info('RPC cache_images called for aggregate %(agg)s, images '
                 '%(images)s', {'agg': aggregate, 'images': image_ids})
        # NOTE: the job records the id of the request that started it all,
        # the one its threads and agents then log (precache.context).
        return self.runner.create(aggregate, image_ids, options,
                                  request_id=ctxt.global_id, caller=caller)

    @messaging.expected_exceptions(exception.NotFound, exception.Invalid)
    @rpc.typed
    def get_job(self, ctxt: context.RequestContext, job_id: str,
                with_results: bool = True) -> objects.Job:
        """``job_id``: an id, or a unique start of one (the short id the
        CLI shows), as git takes a commit's.

        :raises: JobNotFound; Invalid (a start shared by several jobs)
        """
        store = self.runner.store
        if not uuidutils.is_uuid_like(job_id):
            job_id = _unique_job_id(store, job_id)
        return store.get_job(job_id, with_results)

    @messaging.expected_exceptions(exception.NotFound, exception.Invalid)
    @rpc.typed
    def list_jobs(self, ctxt: context.RequestContext,
                  aggregate: str | None = None,
                  state: str | None = None, limit: int = 50,
                  marker: str | None = None) -> list[objects.Job]:
        """``aggregate``: an id, uuid or name (jobs record its name).

        :raises: JobNotFound (unknown marker), InventoryInvalid
        """
        if aggregate is not None:
            try:
                aggregate = self.runner.inventory.get_aggregate(
                    aggregate).name
            except exception.NotFound:
                pass  # NOTE: jobs of an aggregate since removed
        return self.runner.store.list_jobs(aggregate, state, limit, marker)

    @messaging.expected_exceptions(exception.NotFound, exception.Conflict)
    @rpc.typed
    def cancel_job(self, ctxt: context.RequestContext, job_id: str
                   ) -> objects.Job:
        """Start no new host of the job; hosts in flight finish.

        :raises: JobNotFound; Conflict when the job is already final.
        """
        LOG.info('RPC cancel_job called for job %s', job_id)
        runner = self.runner.store.runner_of(job_id)
        if self.peers and runner and runner != self.runner.conductor_host:
            if runner not in self.runner.leases.live_conductors(
                    CONF.conductor.service_down_time):
                # NOTE: its service row says it is down or stopped: no
                # one to wait peer_timeout for.
                LOG.info('Job %(job)s: its conductor %(runner)s is down or '
                         'stopped; cancelling it in the job store here',
                         {'job': job_id, 'runner': runner})
                return self.runner.cancel(job_id)
            # NOTE: only the conductor running the job knows which hosts
            # it is starting; it makes the cancel exact (jobs.py).
            timeout = CONF.conductor.peer_timeout
            try:
                return self.peers.cancel_job(ctxt, job_id, server=runner,
                                             timeout=timeout)
            except messaging.MessagingTimeout:
                LOG.warning('Job %(job)s: its conductor %(runner)s did not '
                            'answer the cancel within %(timeout)ds; '
                            'cancelling it in the job store here',
                            {'job': job_id, 'runner': runner,
                             'timeout': timeout})
        return self.runner.cancel(job_id)

    @messaging.expected_exceptions(exception.NotFound, exception.Invalid)
    def get_resident_images(self, ctxt: context.RequestContext, aggregate: str
                            ) -> dict[str, Any]:
        """:raises: AggregateNotFound, InventoryInvalid"""
        return self.runner.resident_images(aggregate)

    @messaging.expected_exceptions(exception.Invalid,
                                   exception.TemporaryFailure)
    def list_aggregates(self, ctxt: context.RequestContext
                        ) -> list[dict[str, Any]]:
        """:raises: InventoryInvalid, ServiceUnavailable"""
        return [dataclasses.asdict(aggregate) for aggregate in
                self.runner.inventory.list_aggregates()]

    @messaging.expected_exceptions(exception.NotFound, exception.Invalid,
                                   exception.TemporaryFailure)
    def get_aggregate(self, ctxt: context.RequestContext, aggregate: str
                      ) -> dict[str, Any]:
        """:raises: AggregateNotFound, InventoryInvalid, ServiceUnavailable"""
        return dataclasses.asdict(self.runner.inventory.get_aggregate(
            aggregate))

    @messaging.expected_exceptions(exception.Invalid,
                                   exception.TemporaryFailure)
    def find_images(self, ctxt: context.RequestContext,
                    ids: list[str] | None = None,
                    names: list[str] | None = None,
                    properties: dict[str, str] | None = None,
                    caller: dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
        """Glance's image lookup as ``caller`` sees it (novaclient's,
        sent here with an endpoint override). ``caller`` holds the
        caller's token: never log it.

        :raises: ServiceUnavailable
        """
        LOG.debug('RPC find_images called: ids %(ids)s, names %(names)s',
                  {'ids': ids, 'names': names})
        return images.find(self.runner.image_service, ids, names,
                           properties, caller)

    @messaging.expected_exceptions(exception.Invalid, exception.NotFound,
                                   exception.TemporaryFailure)
    @rpc.typed
    def reconcile(self, ctxt: context.RequestContext, aggregate: str,
                  hosts: list[str] | None = None,
                  source: str = 'reconcile') -> objects.Job | None:
        """Start a job for what the aggregate lacks of its desired images.

        :returns: the job, or None when nothing is missing.
        :raises: AggregateNotFound, InvalidOption, TemporaryFailure.
        """
        LOG.info('RPC reconcile called for aggregate %(agg)s%(hosts)s',
                 {'agg': aggregate,
                  'hosts': ', hosts %s' % hosts if hosts else ''})
        job = desired.reconcile(self.runner, aggregate, hosts, source,
                                request_id=ctxt.global_id)
        if job is not None:
            job.results = None  # NOTE: the counts say enough; rows are many
        return job

    def agent_heartbeat(self, ctxt: context.RequestContext,
                        report: dict[str, Any]) -> None:
        """Record an agent's heartbeat (a cast; see agent/heartbeat.py)."""
        if self.registry is not None:
            self.registry.heartbeat(report)

    def list_agents(self, ctxt: context.RequestContext
                    ) -> list[dict[str, Any]]:
        """Every registered agent, its last report and state."""
        return self.registry.list() if self.registry is not None else []
