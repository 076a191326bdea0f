"""The bytes on the bus are the dicts they were before the serializer.

Older agents and conductors read them, so the typed boundary
(precache.rpc.Serializer) must change nothing on the wire: each expected
form below is written out by hand, as the code before it built it.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import oslo_messaging as messaging
import pytest

from precache import context, objects, rpc
from precache.agent.manager import AgentManager
from precache.agent.rpcapi import AgentAPI
from precache.conductor.manager import ConductorManager
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF

State = objects.HostImageState
WHEN = datetime.datetime(2026, 12, 4, 17, 0, 1, 250000, tzinfo=datetime.UTC)
JOB_ID = '5d0c1f8e-8c55-4d34-a1c6-0e7f3f3b9d11'

SPEC_DICT = {'id': 'img-1', 'size': 42, 'name': 'cirros',
             'disk_format': 'qcow2', 'checksum': 'abc',
             'os_hash_algo': 'sha512', 'os_hash_value': 'def',
             'locations': ['rbd://fsid/images/img-1/snap']}
RESULT_DICT = {'host': 'h1', 'image_id': 'img-1', 'state': 'cached',
               'cell': 'cell1', 'method': 'glance-http', 'bytes': 42,
               'seconds': 1.5, 'reason': None,
               'started_at': '2026-12-04T17:00:01.250000+00:00',
               'finished_at': '2026-12-04T17:00:02.750000+00:00'}
JOB_DICT = {'id': JOB_ID, 'aggregate': 'agg1', 'image_ids': ['img-1'],
            'image_names': {'img-1': 'cirros'}, 'state': 'running',
            'options': {'source': 'api'}, 'reason': None,
            'created_at': '2026-12-04T17:00:00+00:00',
            'started_at': '2026-12-04T17:00:01.250000+00:00',
            'finished_at': None, 'hosts': 1,
            'counts': {'cached': 1, 'existing': 0, 'error': 0,
                       'unsupported': 0, 'skipped': 0, 'pending': 0,
                       'running': 0},
            'results': [RESULT_DICT]}


def _bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


class Wire:
    """A transport whose every send is recorded and answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transport = messaging.get_rpc_transport(CONF, url='fake:///')
        self.sent: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.reply: Any = None
        monkeypatch.setattr(self.transport, '_send', self._send)

    def _send(self, target: Any, ctxt: dict[str, Any],
              message: dict[str, Any], **kwargs: Any) -> Any:
        # NOTE: as the drivers do, through JSON.
        self.sent.append((json.loads(_bytes(ctxt)),
                          json.loads(_bytes(message))))
        self.ctxt_bytes, self.message_bytes = _bytes(ctxt), _bytes(message)
        return json.loads(_bytes(self.reply))


@pytest.fixture
def wire(monkeypatch):
    return Wire(monkeypatch)


def test_agent_cache_images_on_the_wire(wire):
    wire.reply = [RESULT_DICT]
    ctxt = context.for_job(JOB_ID, None).waited_until(WHEN)
    results = AgentAPI(wire.transport).cache_images(
        ctxt, 'h1', [objects.ImageSpec.from_dict(SPEC_DICT)], timeout=60,
        call_monitor_timeout=10)
    # Before: rpc.request_context(request_id=job.id, job_id=job.id) plus
    # abandoned_after, and [image.to_dict() for image in images].
    assert wire.ctxt_bytes == _bytes(
        {'request_id': JOB_ID, 'job_id': JOB_ID,
         'abandoned_after': '2026-12-04T17:00:01.250000+00:00'})
    assert wire.message_bytes == _bytes(
        {'method': 'cache_images', 'args': {'images': [SPEC_DICT]},
         'version': '1.0'})
    assert results == [objects.HostImageResult.from_dict(RESULT_DICT)]


def test_agent_call_of_a_job_carries_its_request(wire):
    wire.reply = []
    AgentAPI(wire.transport).cache_images(
        context.for_job(JOB_ID, 'req-api'), 'h1', [], timeout=60,
        call_monitor_timeout=10)
    assert wire.sent[0][0] == {'request_id': JOB_ID,
                               'global_request_id': 'req-api',
                               'job_id': JOB_ID}


def test_agent_ping_on_the_wire(wire):
    wire.reply = {'host': 'h1', 'rpc_version': '1.0'}
    answer = AgentAPI(wire.transport).ping(context.for_job(JOB_ID, None),
                                           'h1', timeout=5)
    assert wire.ctxt_bytes == _bytes({'request_id': JOB_ID,
                                      'job_id': JOB_ID})
    assert wire.message_bytes == _bytes(
        {'method': 'ping', 'args': {}, 'version': '1.0'})
    assert answer == {'host': 'h1', 'rpc_version': '1.0'}


def test_api_context_on_the_wire(wire):
    """As api.util's rpc_context sent it: ids, user and project only."""
    wire.reply = JOB_DICT
    ctxt = context.RequestContext(
        request_id='req-b', global_request_id='req-a', user_id='u',
        project_id='p', auth_token='secret', roles=['admin'],
        is_admin=True, overwrite=False)
    job = ConductorAPI(wire.transport).cache_images(
        ctxt, 'agg1', ['img-1'], {'max_concurrent_hosts': 2},
        caller={'project_id': 'p', 'is_admin': True})
    assert wire.ctxt_bytes == _bytes(
        {'request_id': 'req-b', 'global_request_id': 'req-a',
         'user_id': 'u', 'project_id': 'p'})
    assert b'secret' not in wire.ctxt_bytes
    assert wire.message_bytes == _bytes(
        {'method': 'cache_images',
         'args': {'aggregate': 'agg1', 'image_ids': ['img-1'],
                  'options': {'max_concurrent_hosts': 2},
                  'caller': {'project_id': 'p', 'is_admin': True}},
         'version': '1.1'})
    assert isinstance(job, objects.Job)
    assert job.to_dict() == JOB_DICT


@pytest.mark.parametrize('method, kwargs, args, version, reply', [
    ('get_job', {'job_id': JOB_ID},
     {'job_id': JOB_ID, 'with_results': True}, '1.0', JOB_DICT),
    ('list_jobs', {'aggregate': 'agg1'},
     {'aggregate': 'agg1', 'state': None, 'limit': 50, 'marker': None},
     '1.0', [JOB_DICT]),
    ('cancel_job', {'job_id': JOB_ID}, {'job_id': JOB_ID}, '1.1', JOB_DICT),
    ('reconcile', {'aggregate': 'agg1'},
     {'aggregate': 'agg1', 'hosts': None}, '1.3', None),
])
def test_job_calls_on_the_wire(wire, method, kwargs, args, version, reply):
    wire.reply = reply
    ctxt = context.RequestContext(request_id='req-cli', overwrite=False)
    answer = getattr(ConductorAPI(wire.transport), method)(ctxt, **kwargs)
    assert wire.ctxt_bytes == _bytes({'request_id': 'req-cli'})
    assert wire.message_bytes == _bytes(
        {'method': method, 'args': args, 'version': version})
    if reply is None:
        assert answer is None
    elif isinstance(reply, list):
        assert [job.to_dict() for job in answer] == reply
    else:
        assert isinstance(answer, objects.Job)
        assert answer.to_dict() == reply


def test_a_plain_dict_context_is_sent_as_it_is(wire):
    wire.reply = JOB_DICT
    ConductorAPI(wire.transport).get_job({'request_id': 'req-old'}, JOB_ID)
    assert wire.sent[0][0] == {'request_id': 'req-old'}


# -- the receiving side ------------------------------------------------------

class FakeCache:
    host = 'h1'

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def ensure_all(self, images):
        self.asked.extend(images)
        return [objects.HostImageResult.from_dict(RESULT_DICT)]


def _dispatch(endpoint: Any, method: str, ctxt: dict[str, Any],
              args: dict[str, Any]) -> Any:
    """What oslo.messaging's dispatcher does with a message, as bytes."""
    dispatcher = messaging.rpc.dispatcher.RPCDispatcher(
        [endpoint], rpc.Serializer())
    message = json.loads(_bytes({'method': method, 'args': args}))
    result = dispatcher._do_dispatch(endpoint, method, ctxt, message['args'])
    return json.loads(_bytes(result))


def test_agent_endpoint_takes_and_returns_todays_dicts():
    cache = FakeCache()
    reply = _dispatch(AgentManager(cache), 'cache_images',  # type: ignore
                      {'request_id': JOB_ID, 'job_id': JOB_ID},
                      {'images': [SPEC_DICT]})
    assert cache.asked == [objects.ImageSpec.from_dict(SPEC_DICT)]
    assert reply == [RESULT_DICT]
    # NOTE: the call's context is the handling thread's current one.
    current = context.get_current()
    assert current is not None and current.job_id == JOB_ID


def test_agent_endpoint_without_a_deadline_of_an_older_conductor():
    cache = FakeCache()
    reply = _dispatch(AgentManager(cache), 'cache_images',  # type: ignore
                      {}, {'images': [SPEC_DICT]})
    assert reply == [RESULT_DICT]


class FakeStore:
    def get_job(self, job_id, with_results=True):
        return objects.Job.from_dict(JOB_DICT)

    def list_jobs(self, *args):
        return [objects.Job.from_dict(JOB_DICT)]


class FakeRunner:
    store = FakeStore()


def test_conductor_endpoint_returns_todays_job_dicts():
    manager = ConductorManager(FakeRunner(), scheduler=object())  # type: ignore
    assert _dispatch(manager, 'get_job', {'request_id': 'req-1'},
                     {'job_id': JOB_ID}) == JOB_DICT
    assert _dispatch(manager, 'list_jobs', {}, {}) == [JOB_DICT]
