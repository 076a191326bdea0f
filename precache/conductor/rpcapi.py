"""Client side of the conductor RPC API (API, CLI, consumers → conductor)."""

from __future__ import annotations

from typing import Any

import oslo_messaging as messaging

from precache import objects, rpc


class ConductorAPI:
    """Calls to the ``precache-conductor`` topic (any conductor answers).

    API version history:

    |    1.0 - Initial version: cache_images, get_job, list_jobs.
    """

    # NOTE: must stay equal to ConductorManager.RPC_API_VERSION.
    RPC_API_VERSION = '1.0'

    def __init__(self, transport: messaging.Transport,
                 timeout: int | None = None,
                 retry: int | None = None) -> None:
        """``retry`` bounds reconnection attempts (None: forever)."""
        self.client = rpc.get_client(transport, rpc.CONDUCTOR_TOPIC,
                                     self.RPC_API_VERSION)
        self.timeout = timeout
        self.retry = retry

    def _prepare(self, version: str) -> Any:
        return self.client.prepare(version=version, timeout=self.timeout,
                                   retry=self.retry)

    def cache_images(self, ctxt: dict[str, Any], aggregate: str,
                     image_ids: list[str],
                     options: dict[str, Any] | None = None) -> objects.Job:
        """Validate and record a job, which then runs in the background.

        :returns: the pending job.
        :raises: precache.exception.Invalid, NotFound, TemporaryFailure.
        """
        job = self._prepare('1.0').call(
            ctxt, 'cache_images', aggregate=aggregate, image_ids=image_ids,
            options=options or {})
        return objects.Job.from_dict(job)

    def get_job(self, ctxt: dict[str, Any], job_id: str,
                with_results: bool = True) -> objects.Job:
        """:raises: precache.exception.JobNotFound"""
        job = self._prepare('1.0').call(ctxt, 'get_job', job_id=job_id,
                                        with_results=with_results)
        return objects.Job.from_dict(job)

    def list_jobs(self, ctxt: dict[str, Any], aggregate: str | None = None,
                  state: str | None = None, limit: int = 50,
                  marker: str | None = None) -> list[objects.Job]:
        """Newest first, without per-host rows."""
        jobs = self._prepare('1.0').call(
            ctxt, 'list_jobs', aggregate=aggregate, state=state,
            limit=limit, marker=marker)
        return [objects.Job.from_dict(job) for job in jobs]
