"""The message bus helpers (no broker needed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kombu.transport import memory
from oslo_context import context as oslo_context

from precache import context, objects, rpc
from precache.conf import CONF


def _memory_url() -> str:
    return 'kombu+memory:///rpc-%s' % uuid.uuid4().hex[:8]


def test_one_transport_per_url():
    url = _memory_url()
    first = rpc.get_transport(CONF, url)
    assert rpc.get_transport(CONF, url) is first
    assert rpc.get_transport(CONF, _memory_url()) is not first


def test_transport_url_from_configuration(conf):
    url = _memory_url()
    conf.config(transport_url=url)
    assert rpc.get_transport(CONF) is rpc.get_transport(CONF, url)


def test_memory_transport_does_not_spin():
    rpc.get_transport(CONF, _memory_url())
    transport = object.__new__(memory.Transport)
    transport.polling_interval = 0
    assert transport.polling_interval == rpc.MEMORY_POLLING_INTERVAL > 0


def test_in_process_transports_are_always_reachable():
    rpc.check_reachable(CONF, 'kombu+memory:////')
    rpc.check_reachable(CONF, 'fake://')


def test_remote_exceptions_are_ours():
    assert rpc.ALLOWED_EXMODS == ['precache.exception']


def test_request_context_is_not_made_current():
    before = context.get_current()
    ctxt = rpc.request_context(request_id='req-1', job_id=None)
    assert isinstance(ctxt, context.RequestContext)
    assert ctxt.to_wire() == {'request_id': 'req-1'}
    assert context.get_current() is before


# -- the serializer ----------------------------------------------------------

SPEC = objects.ImageSpec(id='img-1', size=3, locations=('rbd://a',))
RESULT = objects.HostImageResult(host='h1', image_id='img-1',
                                 state=objects.HostImageState.CACHED,
                                 method=objects.Method.FILE, bytes=3)
JOB = objects.Job(id='job-1', aggregate='agg', image_ids=['img-1'],
                  state=objects.JobState.DONE, results=[RESULT])


def test_entities_go_out_as_their_dicts_anywhere_in_a_value():
    serializer = rpc.Serializer()
    assert serializer.serialize_entity(None, SPEC) == SPEC.to_dict()
    assert serializer.serialize_entity(None, [RESULT, (JOB,)]) == \
        [RESULT.to_dict(), [JOB.to_dict()]]
    assert serializer.serialize_entity(None, {'job': JOB, 'n': 1}) == \
        {'job': JOB.to_dict(), 'n': 1}
    assert serializer.serialize_entity(None, {'plain': [1, 'a']}) == \
        {'plain': [1, 'a']}


def test_entities_come_in_as_dicts_for_the_type_hints_to_decide():
    assert rpc.Serializer().deserialize_entity(None, SPEC.to_dict()) == \
        SPEC.to_dict()


@pytest.mark.parametrize('hint, value, expected', [
    (objects.ImageSpec, SPEC.to_dict(), SPEC),
    (list[objects.HostImageResult], [RESULT.to_dict()], [RESULT]),
    (objects.Job | None, None, None),
    (objects.Job | None, JOB.to_dict(), JOB),
    (dict[str, objects.ImageSpec], {'a': SPEC.to_dict()}, {'a': SPEC}),
    (dict[str, Any], {'id': 'x'}, {'id': 'x'}),
    (list[str], ['a'], ['a']),
    (objects.ImageSpec, SPEC, SPEC),
])
def test_from_primitive(hint, value, expected):
    assert rpc.from_primitive(hint, value) == expected


def test_typed_converts_arguments_and_result_by_the_hints():
    seen = []

    @rpc.typed
    def endpoint(ctxt: Any, images: list[objects.ImageSpec],
                 count: int = 0) -> list[objects.HostImageResult]:
        seen.append(images)
        return [RESULT.to_dict()]  # type: ignore[list-item]

    assert endpoint(None, images=[SPEC.to_dict()], count=1) == [RESULT]
    assert endpoint(None, [SPEC]) == [RESULT]
    assert seen == [[SPEC], [SPEC]]


def test_contexts_on_the_wire_and_back():
    serializer = rpc.Serializer()
    ctxt = context.RequestContext(request_id='req-1', job_id='job-1',
                                  global_request_id='req-0',
                                  auth_token='secret', overwrite=False)
    wire = serializer.serialize_context(ctxt)
    assert wire == {'request_id': 'req-1', 'global_request_id': 'req-0',
                    'job_id': 'job-1'}
    back = serializer.deserialize_context(wire)
    assert isinstance(back, context.RequestContext)
    assert (back.request_id, back.global_request_id, back.job_id) == \
        ('req-1', 'req-0', 'job-1')
    assert context.get_current() is back  # NOTE: logs of the call
    assert serializer.serialize_context(None) == {}
    assert serializer.serialize_context({'request_id': 'r'}) == \
        {'request_id': 'r'}


def test_an_oslo_context_goes_out_as_ours():
    ctxt = oslo_context.RequestContext(request_id='req-9', user_id='u',
                                       auth_token='secret', overwrite=False)
    assert rpc.Serializer().serialize_context(ctxt) == \
        {'request_id': 'req-9', 'user_id': 'u'}
