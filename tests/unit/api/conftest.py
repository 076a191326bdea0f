"""The API application in this process, without a bus or a database.

:class:`FakeConductor` stands in for the conductor's RPC client
(``precache.conductor.rpcapi.ConductorAPI``) and is handed to
``build_app`` the way precache-api hands it the real one. Requests are
webob's, straight into the WSGI application: no server, no socket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import pytest
import webob

from precache import objects
from precache.api import app as api_app
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF

JOB_ID = '6a0a3b5e-4c1d-4f2a-9b8e-7d6c5b4a3f21'
IMAGE_ID = '9f8e7d6c-5b4a-4321-8fed-cba987654321'
AGGREGATE = {'id': 11, 'name': 'unit-all',
             'uuid': '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
             'hosts': ['unit-h1', 'unit-h2'],
             'metadata': {'availability_zone': 'az-unit'}}


def make_job(job_id: str = JOB_ID, aggregate: str = 'unit-all',
             image_ids: list[str] | None = None,
             state: objects.JobState = objects.JobState.PENDING
             ) -> objects.Job:
    return objects.Job(id=job_id, aggregate=aggregate,
                       image_ids=list(image_ids or [IMAGE_ID]), state=state)


@dataclasses.dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class FakeConductor:
    """The conductor's RPC client, answering from memory.

    Every call is recorded in ``calls``. ``fail_with`` makes every call
    raise that exception (as the real client raises what the conductor
    or the bus raised).
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail_with: BaseException | None = None

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(name, args, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def cache_images(self, ctxt: Any, aggregate: str, image_ids: list[str],
                     options: dict[str, Any], **kwargs: Any) -> objects.Job:
        self._record('cache_images', ctxt, aggregate, image_ids, options,
                     **kwargs)
        return make_job(aggregate=aggregate, image_ids=image_ids)

    def get_job(self, ctxt: Any, job_id: str, **kwargs: Any) -> objects.Job:
        self._record('get_job', ctxt, job_id, **kwargs)
        return make_job(job_id)

    def list_jobs(self, ctxt: Any, **kwargs: Any) -> list[objects.Job]:
        self._record('list_jobs', ctxt, **kwargs)
        return [make_job()]

    def cancel_job(self, ctxt: Any, job_id: str,
                   **kwargs: Any) -> objects.Job:
        self._record('cancel_job', ctxt, job_id, **kwargs)
        return make_job(job_id, state=objects.JobState.CANCELLED)

    def get_resident_images(self, ctxt: Any,
                            aggregate: str) -> dict[str, Any]:
        self._record('get_resident_images', ctxt, aggregate)
        return {'aggregate': aggregate, 'hosts': [
            {'host': 'unit-h1', 'images': [{'id': IMAGE_ID}]}]}

    def list_aggregates(self, ctxt: Any) -> list[dict[str, Any]]:
        self._record('list_aggregates', ctxt)
        return [dict(AGGREGATE)]

    def get_aggregate(self, ctxt: Any, aggregate: str) -> dict[str, Any]:
        self._record('get_aggregate', ctxt, aggregate)
        return dict(AGGREGATE)

    def find_images(self, ctxt: Any, **kwargs: Any) -> list[dict[str, Any]]:
        self._record('find_images', ctxt, **kwargs)
        return [{'id': IMAGE_ID, 'name': 'cirros', 'status': 'active'}]

    def names(self) -> list[str]:
        return [call.name for call in self.calls]


@pytest.fixture(autouse=True)
def parsed_conf(conf: Any) -> None:
    """CONF as a service has it: parsed (oslo.policy looks for
    policy.yaml through it), with [api] auth_strategy = noauth."""
    CONF([], project='precache', default_config_files=[])
    conf.config(group='api', auth_strategy='noauth')


@pytest.fixture
def conductor() -> FakeConductor:
    return FakeConductor()


Client = Callable[..., webob.Response]


@pytest.fixture
def client(conductor: FakeConductor) -> Client:
    """``client(method, path, json=..., headers=..., body=...)``: the
    application's response to that request."""
    application = api_app.build_app(lambda: cast(ConductorAPI, conductor))

    def call(method: str, path: str, json: Any = None,
             headers: dict[str, str] | None = None,
             body: bytes | None = None,
             content_type: str | None = None) -> webob.Response:
        req = webob.Request.blank(path, method=method,
                                  headers=headers or {})
        if json is not None:
            req.json_body = json
        if body is not None:
            req.body = body
        if content_type is not None:
            req.content_type = content_type
        return req.get_response(application)

    return call


def fault(resp: webob.Response, code: int) -> str:
    """Assert Nova's fault shape with ``code``; its message."""
    assert resp.status_int == code, (resp.status, resp.text)
    assert resp.content_type == 'application/json', resp.content_type
    body = resp.json_body
    assert len(body) == 1, body
    kind, inner = next(iter(body.items()))
    assert set(inner) == {'code', 'message'}, body
    assert inner['code'] == code, body
    assert isinstance(inner['message'], str) and inner['message'], body
    assert 'Traceback' not in resp.text
    return inner['message']


def fault_kind(resp: webob.Response) -> str:
    return next(iter(resp.json_body))


def cache_body(*image_ids: str) -> dict[str, Any]:
    return {'cache': [{'id': image_id} for image_id in image_ids]}
