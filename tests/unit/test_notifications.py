"""The conductor's notifications: payloads, the sender, a job's events."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from typing import Any

import oslo_messaging as messaging

from precache import notifications, objects, rpc
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor import jobs
from precache.conductor.inventory import Aggregate, StaticInventory
from precache.conf import CONF

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                       'functional', 'samples')
State = objects.HostImageState


def nova_sample(event_type: str) -> dict[str, Any]:
    with open(os.path.join(SAMPLES, 'nova-%s.json' % event_type)) as f:
        return dict(json.load(f))


def _result(host, image_id, state, **fields):
    return objects.HostImageResult(host=host, image_id=image_id,
                                   state=state, **fields)


def _job(results, state=objects.JobState.DONE, **fields):
    counts = objects.count_states(results)
    return objects.Job(id='j-1', aggregate='gpu', image_ids=['i1', 'i2'],
                       state=state, results=results, counts=counts,
                       hosts=len({r.host for r in results}), **fields)


class Collector:
    """Stands for the message bus: what the sender thread sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, event_type: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.sent.append((event_type, json.loads(json.dumps(payload))))

    def types(self) -> list[str]:
        return [event_type for event_type, _ in self.sent]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [p for t, p in self.sent if t == event_type]


# -- payloads ----------------------------------------------------------------

def test_nova_payloads_have_novas_envelope_and_fields():
    found = Aggregate(id='7', name='gpu', hosts=('h1', 'h2'),
                      uuid='788608ec-ebdc-45c5-bc7f-e5f24ab92c80',
                      metadata={'availability_zone': 'az1'})
    job = _job([_result('h1', 'i1', State.CACHED),
                _result('h1', 'i2', State.ERROR, reason='boom'),
                _result('h2', 'i1', State.SKIPPED),
                _result('h2', 'i2', State.SKIPPED)])
    aggregate = notifications.aggregate_payload(job, found)
    for phase in ('start', 'end'):
        sample = nova_sample('aggregate.cache_images.%s' % phase)['payload']
        ours = aggregate.to_primitive()
        assert {k: v for k, v in ours.items() if k != 'nova_object.data'} \
            == {k: v for k, v in sample.items() if k != 'nova_object.data'}
        assert sorted(ours['nova_object.data']) == sorted(
            sample['nova_object.data'])
    assert aggregate.to_primitive()['nova_object.data'] == {
        'id': 7, 'uuid': '788608ec-ebdc-45c5-bc7f-e5f24ab92c80',
        'name': 'gpu', 'hosts': ['h1', 'h2'],
        'metadata': {'availability_zone': 'az1'}}

    progress = notifications.progress_payload(
        aggregate, 'h1', [r for r in job.results if r.host == 'h1'], 1)
    sample = nova_sample('aggregate.cache_images.progress')['payload']
    ours = progress.to_primitive()
    assert ours['nova_object.name'] == sample['nova_object.name'] == \
        'AggregateCachePayload'
    assert ours['nova_object.version'] == sample['nova_object.version']
    assert sorted(ours['nova_object.data']) == sorted(
        sample['nova_object.data'])
    assert ours['nova_object.data'] == {
        'id': 7, 'uuid': '788608ec-ebdc-45c5-bc7f-e5f24ab92c80',
        'name': 'gpu', 'host': 'h1', 'images_cached': ['i1'],
        'images_failed': ['i2'], 'index': 1, 'total': 2}


def test_aggregate_unknown_to_the_inventory_gives_name_and_hosts_only():
    job = _job([_result('h1', 'i1', State.CACHED)])
    data = notifications.aggregate_payload(job).to_primitive()[
        'nova_object.data']
    assert data == {'id': None, 'uuid': None, 'name': 'gpu',
                    'hosts': ['h1'], 'metadata': {}}
    # A static inventory's id that is not Nova's integer is left out.
    found = Aggregate(id='edge-1', name='gpu', hosts=('h1',))
    assert notifications.aggregate_payload(job, found).id is None


def test_job_and_image_payloads():
    job = _job([_result('h1', 'i1', State.CACHED,
                        method=objects.Method.GLANCE_HTTP, bytes=1024,
                        seconds=1.23456, cell='c1'),
                _result('h1', 'i2', State.EXISTING)],
               options={'max_concurrent_hosts': 2}, reason=None)
    assert notifications.job_start_payload(job, False).to_primitive() == {
        'job_id': 'j-1', 'aggregate': 'gpu', 'image_ids': ['i1', 'i2'],
        'hosts': 1, 'options': {'max_concurrent_hosts': 2},
        'resumed': False}
    end = notifications.job_end_payload(job, 2.5).to_primitive()
    assert end == {'job_id': 'j-1', 'aggregate': 'gpu',
                   'image_ids': ['i1', 'i2'], 'hosts': 1, 'state': 'done',
                   'reason': None, 'seconds': 2.5,
                   'counts': {'cached': 1, 'existing': 1, 'error': 0,
                              'unsupported': 0, 'skipped': 0}}
    image = notifications.image_payload('j-1', 'gpu', job.results[0])
    assert image.to_primitive() == {
        'job_id': 'j-1', 'aggregate': 'gpu', 'host': 'h1', 'cell': 'c1',
        'image_id': 'i1', 'state': 'cached', 'method': 'glance-http',
        'bytes': 1024, 'seconds': 1.235, 'reason': None}


# -- the notifier on its own -------------------------------------------------

def test_disabled_by_default_sends_nothing_and_starts_no_thread():
    notifier = notifications.JobNotifier.from_conf('c1')
    assert not notifier.enabled
    before = threading.active_count()
    notifier.job_started(_job([_result('h1', 'i1', State.PENDING)],
                              state=objects.JobState.PENDING))
    notifier.stop()
    assert threading.active_count() == before


def test_a_job_never_started_still_ends_with_every_host_reported():
    """E.g. a job that failed, or was cancelled, before its first host."""
    sent = Collector()
    notifier = notifications.JobNotifier(sent)
    job = _job([_result(h, i, State.SKIPPED, reason='cancelled by request')
                for h in ('h1', 'h2', 'h3') for i in ('i1', 'i2')],
               state=objects.JobState.CANCELLED)
    notifier.job_ended(job, 0.0, lambda: Aggregate(
        id='3', name='gpu', hosts=('h1', 'h2', 'h3')))
    notifier.stop()
    progress = [p['nova_object.data'] for p in
                sent.of('aggregate.cache_images.progress')]
    assert [(p['host'], p['index'], p['total']) for p in progress] == [
        ('h1', 1, 3), ('h2', 2, 3), ('h3', 3, 3)]
    assert all(p['images_failed'] == ['i1', 'i2'] and p['id'] == 3
               for p in progress)
    assert len(sent.of('precache.image.skipped')) == 6
    assert sent.types()[-2:] == ['aggregate.cache_images.end',
                                 'precache.job.end']
    assert sent.of('precache.job.end')[0]['state'] == 'cancelled'


def test_image_events_can_be_turned_off():
    sent = Collector()
    notifier = notifications.JobNotifier(sent, image_events=False)
    notifier.job_ended(_job([_result('h1', 'i1', State.CACHED)]), 1.0)
    notifier.stop()
    assert sent.types() == ['aggregate.cache_images.progress',
                            'aggregate.cache_images.end', 'precache.job.end']


def test_a_failing_bus_never_reaches_the_caller(caplog):
    caplog.set_level(logging.INFO, logger='precache.notifications')
    tried = []

    def send(event_type, payload):
        tried.append(event_type)
        raise messaging.MessageDeliveryFailure('bus down')

    notifier = notifications.JobNotifier(send)
    job = _job([_result('h1', 'i1', State.PENDING)],
               state=objects.JobState.PENDING)

    def lookup():
        raise RuntimeError('inventory down')
    notifier.job_started(job, lookup)
    notifier.host_done('j-1', [_result('h1', 'i1', State.CACHED)])
    notifier.job_ended(_job([_result('h1', 'i1', State.CACHED)]), 1.0)
    notifier.stop()
    # One failure does not keep the other events from being tried.
    assert tried == ['aggregate.cache_images.start', 'precache.job.start',
                     'aggregate.cache_images.progress',
                     'precache.image.cached', 'aggregate.cache_images.end',
                     'precache.job.end']
    assert 'Notifications: could not send precache.job.end: bus down' \
        in caplog.text
    assert 'aggregate gpu not found for its notifications ' \
        '(inventory down)' in caplog.text


def test_a_full_queue_drops_and_counts(caplog):
    release = threading.Event()
    sent = Collector()

    def send(event_type, payload):
        release.wait(10)
        sent(event_type, payload)

    notifier = notifications.JobNotifier(send, max_queued=100)
    start = time.monotonic()
    for _ in range(300):
        notifier.job_ended(_job([_result('h1', 'i1', State.CACHED)]), 1.0)
    # The caller never waits for the bus, even when it is stuck.
    assert time.monotonic() - start < 1.0
    assert notifier._sender is not None
    assert 199 <= notifier._sender.dropped <= 200
    assert 'dropped so far' in caplog.text
    release.set()
    notifier.stop()
    assert len(sent.of('precache.job.end')) in (100, 101)


def test_log_driver(conf, caplog):
    caplog.set_level(logging.INFO, logger='precache.notifications')
    conf.config(group='notifications', enabled=True, driver='log')
    notifier = notifications.JobNotifier.from_conf('c1')
    notifier.job_ended(_job([_result('h1', 'i1', State.CACHED)]), 1.0)
    notifier.stop()
    assert 'Notification precache.job.end from precache-conductor.c1: ' \
        '{"aggregate": "gpu"' in caplog.text


def test_bus_driver_sends_messagingv2_on_the_topics(conf):
    """Over the in-process bus: what a listener of the topic receives."""
    url = 'kombu+memory:///notify-%s' % uuid.uuid4().hex[:8]
    topic = 'precache-unit-%s' % uuid.uuid4().hex[:8]
    conf.config(group='notifications', enabled=True, topics=[topic])
    conf.config(group='oslo_messaging_notifications', transport_url=url)
    received: list[tuple[str, str, dict[str, Any]]] = []

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            received.append((publisher_id, event_type, payload))

    transport = rpc.get_notification_transport(CONF)
    listener = rpc.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()])
    listener.start()
    try:
        notifier = notifications.JobNotifier.from_conf('c1')
        notifier.job_ended(_job([_result('h1', 'i1', State.CACHED)]), 1.0)
        notifier.stop()
        deadline = time.monotonic() + 10
        while len(received) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        listener.stop()
        listener.wait()
    assert [r[1] for r in received] == [
        'aggregate.cache_images.progress', 'precache.image.cached',
        'aggregate.cache_images.end', 'precache.job.end']
    assert {r[0] for r in received} == {'precache-conductor.c1'}


# -- the events of real jobs -------------------------------------------------

def _runner(cloud, store, sent) -> jobs.JobRunner:
    agent_api = AgentAPI(cloud.transport)
    runner = jobs.JobRunner(store, StaticInventory(cloud.inventory),
                            LocalImageService(cloud.catalog),
                            lambda cell: agent_api, 'u-notifying')
    runner.notifier = notifications.JobNotifier(sent)
    return runner


def test_a_job_sends_start_progress_per_host_and_end(cloud, conf,
                                                    own_store):
    """Aggregate ``partial``: two hosts with agents, one without."""
    conf.config(group='conductor', agent_ping_timeout=2)
    sent = Collector()
    runner = _runner(cloud, own_store, sent)
    image_ids = [cloud.add_image(), cloud.add_image(status='active')]
    try:
        accepted = runner.create('partial', image_ids)
        job = cloud.wait(accepted.id, store=own_store)
    finally:
        runner.stop()
    assert job.state is objects.JobState.DONE
    types = sent.types()
    assert types[:2] == ['aggregate.cache_images.start',
                         'precache.job.start']
    assert types[-2:] == ['aggregate.cache_images.end', 'precache.job.end']
    start = sent.of('aggregate.cache_images.start')[0]['nova_object.data']
    assert start == {'id': 2, 'uuid': None, 'name': 'partial',
                     'hosts': ['u-ghost', 'u-h1', 'u-h3'], 'metadata': {}}
    progress = [p['nova_object.data'] for p in
                sent.of('aggregate.cache_images.progress')]
    assert sorted(p['index'] for p in progress) == [1, 2, 3]
    assert {p['total'] for p in progress} == {3}
    by_host = {p['host']: p for p in progress}
    assert sorted(by_host) == ['u-ghost', 'u-h1', 'u-h3']
    for host in ('u-h1', 'u-h3'):
        assert sorted(by_host[host]['images_cached']) == sorted(image_ids)
        assert by_host[host]['images_failed'] == []
    assert sorted(by_host['u-ghost']['images_failed']) == sorted(image_ids)
    cached = sent.of('precache.image.cached')
    assert sorted((p['host'], p['image_id']) for p in cached) == sorted(
        (h, i) for h in ('u-h1', 'u-h3') for i in image_ids)
    assert all(p['job_id'] == job.id and p['method'] == 'file'
               and p['bytes'] == 64 * 1024 and p['aggregate'] == 'partial'
               for p in cached)
    skipped = sent.of('precache.image.skipped')
    assert sorted(p['image_id'] for p in skipped) == sorted(image_ids)
    assert all(p['host'] == 'u-ghost' and p['reason'] for p in skipped)
    assert sent.of('precache.job.start')[0] == {
        'job_id': job.id, 'aggregate': 'partial', 'image_ids': image_ids,
        'hosts': 3, 'options': {}, 'resumed': False}
    end = sent.of('precache.job.end')[0]
    assert end['state'] == 'done' and end['counts'] == {
        'cached': 4, 'existing': 0, 'error': 0, 'unsupported': 0,
        'skipped': 2}
    assert end['seconds'] > 0


def test_progress_is_sent_outside_the_record_lock(cloud, own_store):
    """A sender stuck on the bus does not hold up the hosts of a job."""
    release = threading.Event()
    sent = Collector()

    def stuck(event_type, payload):
        release.wait(30)
        sent(event_type, payload)

    runner = _runner(cloud, own_store, stuck)
    try:
        accepted = runner.create('all', [cloud.add_image()])
        job = cloud.wait(accepted.id, store=own_store)
        assert job.state is objects.JobState.DONE
        assert sent.sent == []
    finally:
        release.set()
        runner.stop()
    assert sent.types()[-1] == 'precache.job.end'


def test_docs_list_every_payload_field():
    from tests.functional.notify import documented_fields

    documented = documented_fields()
    classes = {
        'aggregate.cache_images.start': notifications.AggregatePayload,
        'aggregate.cache_images.end': notifications.AggregatePayload,
        'aggregate.cache_images.progress':
            notifications.AggregateCachePayload,
        'precache.job.start': notifications.JobStartPayload,
        'precache.job.end': notifications.JobEndPayload,
        **{'precache.image.%s' % state.value: notifications.ImagePayload
           for state in objects.FINAL_STATES},
    }
    assert sorted(documented) == sorted(classes)
    for event_type, cls in classes.items():
        assert documented[event_type] == {
            f.name for f in dataclasses.fields(cls)}, event_type
