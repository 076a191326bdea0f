"""``/jobs``: what Nova never had, a handle on a pre-cache request."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import webob
import webob.exc

from precache import exception, objects
from precache.api import policy, util
from precache.conf import CONF

_QUERY = ('aggregate', 'state', 'limit', 'marker')
_STATES = [state.value for state in objects.JobState]


def present(req: util.Request, job: objects.Job) -> dict[str, Any]:
    data = job.to_dict()
    data['links'] = [{'rel': 'self', 'href': req.url('/jobs/%s' % job.id)}]
    return data


def _query(req: util.Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in req.GET.items():
        if name not in _QUERY:
            raise webob.exc.HTTPBadRequest(
                detail='Unknown query parameter %r; known: %s.'
                       % (name[:40], ', '.join(_QUERY)))
        if name in found:
            raise webob.exc.HTTPBadRequest(
                detail='Query parameter %s given more than once.' % name)
        if not value.isprintable():
            # NOTE: a NUL byte reaches no database (PostgreSQL refuses it).
            raise webob.exc.HTTPBadRequest(
                detail='Query parameter %s contains control characters.'
                       % name)
        found[name] = value
    return found


def _limit(value: str | None) -> int:
    if value is None:
        return min(CONF.api.default_limit, CONF.api.max_limit)
    if not value.isdigit() or not 1 <= int(value) <= 10 ** 9:
        raise webob.exc.HTTPBadRequest(
            detail='limit must be a positive integer, not %r.' % value[:40])
    return min(int(value), CONF.api.max_limit)


def list_jobs(req: util.Request) -> webob.Response:
    """Newest first, without per-host rows; ``jobs_links`` has the next
    page when this one is full."""
    req.authorize(policy.JOBS_LIST)
    query = _query(req)
    limit = _limit(query.get('limit'))
    state = query.get('state')
    if state is not None and state not in _STATES:
        raise webob.exc.HTTPBadRequest(
            detail='state must be one of %s, not %r.'
                   % (', '.join(_STATES), state[:40]))
    marker = query.get('marker')
    if marker is not None:
        marker = util.canonical_uuid(marker, 'marker')
    aggregate = query.get('aggregate')
    if aggregate is not None and not 0 < len(aggregate) <= 255:
        raise webob.exc.HTTPBadRequest(
            detail='aggregate must have 1 to 255 characters.')
    try:
        jobs = req.conductor.list_jobs(req.rpc_context(),
                                       aggregate=aggregate, state=state,
                                       limit=limit, marker=marker)
    except exception.JobNotFound:
        raise webob.exc.HTTPBadRequest(
            detail='marker %s is not a job.' % marker) from None
    body: dict[str, Any] = {'jobs': [present(req, job) for job in jobs]}
    if len(jobs) == limit:
        params = {**query, 'limit': str(limit), 'marker': jobs[-1].id}
        body['jobs_links'] = [{'rel': 'next', 'href': req.url('/jobs') +
                               '?' + urlencode(sorted(params.items()))}]
    return util.json_response(body)


def show_job(req: util.Request, job_id: str) -> webob.Response:
    """One job: state, counts and every (host, image) row."""
    req.authorize(policy.JOBS_SHOW)
    job_id = util.canonical_uuid(job_id, 'job id')
    job = req.conductor.get_job(req.rpc_context(), job_id)
    return util.json_response({'job': present(req, job)})


def cancel_job(req: util.Request, job_id: str) -> webob.Response:
    """202: no new host starts; hosts in flight finish, then the job is
    ``cancelled``. 409 when the job is already final."""
    req.authorize(policy.JOBS_CANCEL)
    job_id = util.canonical_uuid(job_id, 'job id')
    job = req.conductor.cancel_job(req.rpc_context(), job_id)
    return util.json_response({'job': present(req, job)}, status=202)
