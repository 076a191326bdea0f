"""The shared records: states, JSON round trips, counts and summaries."""

from __future__ import annotations

import datetime
import json

import pytest

from precache import objects

State = objects.HostImageState
UTC = datetime.UTC
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T1 = T0 + datetime.timedelta(seconds=90)


def _result(host: str, state: State, **kwargs) -> objects.HostImageResult:
    return objects.HostImageResult(host=host, image_id='img', state=state,
                                   **kwargs)


@pytest.mark.parametrize('state,final', [
    (objects.JobState.PENDING, False),
    (objects.JobState.RUNNING, False),
    (objects.JobState.DONE, True),
    (objects.JobState.FAILED, True),
    (objects.JobState.CANCELLED, True),
    (objects.JobState.EXPIRED, True),
])
def test_job_state_is_final(state, final):
    assert state.is_final is final


def test_host_image_state_final_and_resident():
    assert {s for s in State if not s.is_final} == {State.PENDING,
                                                    State.RUNNING}
    assert {s for s in State if s.is_resident} == {State.CACHED,
                                                   State.EXISTING}
    assert set(objects.FINAL_STATES) == {s for s in State if s.is_final}


def test_states_are_plain_strings():
    # They go into JSON and the database as their values.
    assert json.dumps([State.CACHED, objects.JobState.DONE]) == \
        '["cached", "done"]'
    assert State('skipped') is State.SKIPPED


def test_image_spec_round_trip_keeps_locations_a_tuple():
    spec = objects.ImageSpec(id='i1', size=10, name='n', disk_format='raw',
                             checksum='c', os_hash_algo='sha512',
                             os_hash_value='v',
                             locations=('file:///a', '/b'))
    data = spec.to_dict()
    assert data['locations'] == ['file:///a', '/b']
    json.dumps(data)
    again = objects.ImageSpec.from_dict(json.loads(json.dumps(data)))
    assert again == spec
    assert isinstance(again.locations, tuple)


def test_image_spec_from_dict_ignores_unknown_fields_and_null_locations():
    spec = objects.ImageSpec.from_dict({'id': 'i1', 'locations': None,
                                        'container_format': 'bare'})
    assert spec == objects.ImageSpec(id='i1')


def test_host_image_result_round_trip():
    result = objects.HostImageResult(
        host='h1', image_id='i1', state=State.CACHED, cell='c1',
        method=objects.Method.FILE, bytes=123, seconds=1.23456,
        reason=None, started_at=T0, finished_at=T1)
    data = json.loads(json.dumps(result.to_dict()))
    assert data['state'] == 'cached'
    assert data['method'] == 'file'
    assert data['seconds'] == 1.235
    assert data['started_at'] == T0.isoformat()
    again = objects.HostImageResult.from_dict(data)
    assert again.state is State.CACHED
    assert again.method is objects.Method.FILE
    assert again.started_at == T0 and again.finished_at == T1
    assert (again.host, again.image_id, again.cell, again.bytes) == \
        ('h1', 'i1', 'c1', 123)


def test_host_image_result_from_sparse_dict():
    result = objects.HostImageResult.from_dict(
        {'host': 'h', 'image_id': 'i', 'state': 'skipped',
         'reason': 'agent not responding'})
    assert result.method is None
    assert result.bytes == 0 and result.seconds == 0.0
    assert result.started_at is None
    assert result.reason == 'agent not responding'


def test_count_states_has_every_state_in_the_usual_order():
    counts = objects.count_states([
        _result('a', State.CACHED), _result('b', State.CACHED),
        _result('c', State.ERROR), _result('d', State.PENDING)])
    assert list(counts) == ['cached', 'existing', 'error', 'unsupported',
                            'skipped', 'pending', 'running']
    assert counts == {'cached': 2, 'existing': 0, 'error': 1,
                      'unsupported': 0, 'skipped': 0, 'pending': 1,
                      'running': 0}


def test_summary_text():
    assert objects.summary_text({'cached': 12, 'existing': 3, 'error': 1,
                                 'skipped': 2, 'pending': 7}) == \
        '12 cached, 3 existing, 1 error, 0 unsupported, 2 skipped'
    assert objects.summary_text({}) == \
        '0 cached, 0 existing, 0 error, 0 unsupported, 0 skipped'


def test_job_round_trip_with_and_without_results():
    job = objects.Job(
        id='j1', aggregate='agg', image_ids=['i1', 'i2'],
        state=objects.JobState.DONE, options={'max_concurrent_hosts': 2},
        reason=None, created_at=T0, started_at=T0, finished_at=T1,
        hosts=1, counts={'cached': 2},
        results=[_result('h1', State.CACHED, started_at=T0),
                 _result('h1', State.ERROR, reason='boom')],
        image_names={'i1': 'cirros-0.6'})
    data = json.loads(json.dumps(job.to_dict()))
    assert data['image_names'] == {'i1': 'cirros-0.6'}
    again = objects.Job.from_dict(data)
    assert again.image_names == {'i1': 'cirros-0.6'}
    assert again.state is objects.JobState.DONE
    assert again.options == {'max_concurrent_hosts': 2}
    assert again.created_at == T0 and again.finished_at == T1
    assert [r.state for r in again.results] == [State.CACHED, State.ERROR]
    assert again.results[1].reason == 'boom'

    job.results = None
    data = job.to_dict()
    assert 'results' not in data
    assert objects.Job.from_dict(data).results is None


def test_job_from_a_dict_without_image_names():
    """What a conductor of the previous release sends: no names."""
    data = objects.Job(id='j', aggregate='a', image_ids=['i1'],
                       state=objects.JobState.PENDING).to_dict()
    del data['image_names']
    assert objects.Job.from_dict(data).image_names == {}


def test_job_seconds():
    job = objects.Job(id='j', aggregate='a', image_ids=[],
                      state=objects.JobState.PENDING)
    assert job.seconds is None
    job.started_at, job.finished_at = T0, T1
    assert job.seconds == 90.0
    job.finished_at = None
    job.started_at = objects.utcnow() - datetime.timedelta(seconds=5)
    assert 5.0 <= job.seconds < 60.0


def test_utcnow_is_aware():
    assert objects.utcnow().tzinfo is not None
