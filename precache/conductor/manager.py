"""Server side of the conductor RPC API: thin endpoints over jobs."""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging

from precache import exception
from precache.conductor.jobs import JobRunner

LOG = logging.getLogger(__name__)


class ConductorManager:
    """RPC endpoint of a conductor (topic ``precache-conductor``)."""

    # NOTE: must stay equal to ConductorAPI.RPC_API_VERSION (a test checks).
    RPC_API_VERSION = '1.0'

    target = messaging.Target(version=RPC_API_VERSION)

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self) -> None:
        self.runner.recover()

    def stop(self) -> None:
        self.runner.stop()

    @messaging.expected_exceptions(exception.Invalid, exception.NotFound,
                                   exception.TemporaryFailure)
    def cache_images(self, ctxt: dict[str, Any], aggregate: str,
                     image_ids: list[str],
                     options: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """Accept a job: make ``image_ids`` resident on ``aggregate``.

        :returns: the recorded, pending job.
        :raises: Invalid (bad image list or option, image not active),
            NotFound (aggregate or image), TemporaryFailure.
        """
        LOG.info('[req %(req)s] RPC cache_images called for aggregate '
                 '%(agg)s, images %(images)s',
                 {'req': ctxt.get('request_id'), 'agg': aggregate,
                  'images': image_ids})
        job = self.runner.create(aggregate, image_ids, options,
                                 request_id=ctxt.get('request_id'))
        return job.to_dict()

    @messaging.expected_exceptions(exception.NotFound)
    def get_job(self, ctxt: dict[str, Any], job_id: str,
                with_results: bool = True) -> dict[str, Any]:
        """:raises: JobNotFound"""
        return self.runner.store.get_job(job_id, with_results).to_dict()

    @messaging.expected_exceptions(exception.NotFound)
    def list_jobs(self, ctxt: dict[str, Any], aggregate: str | None = None,
                  state: str | None = None, limit: int = 50,
                  marker: str | None = None) -> list[dict[str, Any]]:
        """:raises: JobNotFound (unknown marker)"""
        jobs = self.runner.store.list_jobs(aggregate, state, limit, marker)
        return [job.to_dict() for job in jobs]
