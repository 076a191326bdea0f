"""The endpoint's decisions: which conductor call, acknowledge or requeue.

The conductor is a recording stand-in here; tests/functional/
test_consumer.py runs the same notifications against real ones.
"""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging
import pytest

from precache import exception, objects
from precache.consumer.endpoint import NotificationEndpoint
from tests.unit.consumer.test_events import sample

HANDLED = messaging.NotificationResult.HANDLED
REQUEUE = messaging.NotificationResult.REQUEUE


class Conductor:
    """Records calls; ``errors`` maps an aggregate to what it raises."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.errors: dict[str, BaseException] = {}

    def _job(self, aggregate: str) -> objects.Job:
        if aggregate in self.errors:
            raise self.errors[aggregate]
        return objects.Job(id='job-%s' % aggregate, aggregate=aggregate,
                           image_ids=['i1'], state=objects.JobState.PENDING,
                           hosts=2)

    def cache_images(self, ctxt, aggregate, image_ids, options=None):
        assert ctxt.request_id.startswith('req-')
        self.calls.append(('cache_images', aggregate, image_ids, options))
        return self._job(aggregate)

    def reconcile(self, ctxt, aggregate, hosts=None, source=None):
        assert ctxt.request_id.startswith('req-')
        self.calls.append(('reconcile', aggregate, hosts, source))
        return self._job(aggregate)


@pytest.fixture
def conductor() -> Conductor:
    return Conductor()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def endpoint(conductor, slept) -> NotificationEndpoint:
    return NotificationEndpoint(conductor, sleep=slept.append)  # type: ignore


def deliver(endpoint, message: dict[str, Any], message_id: str = 'm-1'):
    return endpoint.info({}, message['publisher_id'], message['event_type'],
                         message['payload'],
                         {'message_id': message_id, 'timestamp': 'now'})


def test_image_activate_asks_for_a_deduplicated_job_per_aggregate(
        endpoint, conductor, caplog):
    caplog.set_level(logging.INFO)
    message = sample('glance-image.activate')
    assert deliver(endpoint, message, message['message_id']) == HANDLED
    image = '513876a7-2f03-4190-b9f9-f4a138f0599b'
    options = {'dedupe': True, 'source': 'consumer:image.activate'}
    assert conductor.calls == [
        ('cache_images', name, [image], options)
        for name in ('gpu-hosts', 'edge', 'ssd-hosts')]
    assert 'Notification 5db730d2-061e-4c20-be77-fba11ca1ce96 ' \
        '(image.activate): aggregate edge, image %s: job job-edge ' \
        '(pending, 2 host(s), 1 image(s))' % image in caplog.text


def test_a_redelivered_copy_is_acknowledged_without_a_call(
        endpoint, conductor):
    message = sample('glance-image.update')
    assert deliver(endpoint, message) == HANDLED
    assert deliver(endpoint, message) == HANDLED
    assert len(conductor.calls) == 3
    # Another message about the same image is a new request (the
    # conductor's dedupe answers it).
    assert deliver(endpoint, message, 'm-2') == HANDLED
    assert len(conductor.calls) == 6


def test_an_image_not_yet_active_starts_nothing(endpoint, conductor):
    message = sample('glance-image.update')
    message['payload']['status'] = 'queued'
    assert deliver(endpoint, message) == HANDLED
    assert conductor.calls == []


def test_an_image_naming_no_aggregate_starts_nothing(endpoint, conductor):
    message = sample('glance-image.activate')
    message['payload']['properties'] = {}
    message['payload']['tags'] = ['other']
    assert deliver(endpoint, message) == HANDLED
    assert conductor.calls == []


def test_unknown_events_are_acknowledged(endpoint, conductor):
    for event_type in ('image.create', 'compute.instance.create.end',
                       'aggregate.add_host.start', ''):
        assert endpoint.info({}, 'x', event_type, {'id': 1}, {}) == HANDLED
    assert conductor.calls == []


@pytest.mark.parametrize('event_type,payload', [
    ('image.activate', 'garbage'),
    ('image.update', {'tags': ['precache:a']}),
    ('aggregate.add_host.end', {'nova_object.data': None}),
    ('aggregate.addhost.end', {'aggregate_id': 1}),
    ('aggregate.update_metadata.end', None),
])
def test_malformed_notifications_are_logged_and_acknowledged(
        endpoint, conductor, caplog, event_type, payload):
    assert endpoint.info({}, 'pub', event_type, payload,
                         {'message_id': 'm-bad'}) == HANDLED
    assert conductor.calls == []
    assert 'Notification m-bad from pub ignored: Notification %s cannot ' \
        'be used' % event_type in caplog.text


def test_a_refused_aggregate_does_not_stop_the_others(endpoint, conductor,
                                                      caplog):
    conductor.errors['edge'] = exception.AggregateNotFound(aggregate='edge')
    assert deliver(endpoint, sample('glance-image.activate')) == HANDLED
    assert [c[1] for c in conductor.calls] == ['gpu-hosts', 'edge',
                                               'ssd-hosts']
    assert 'aggregate edge, image 513876a7-2f03-4190-b9f9-f4a138f0599b: ' \
        'refused: Aggregate edge could not be found.' in caplog.text


@pytest.mark.parametrize('error', [
    messaging.MessagingTimeout('no conductor answered'),
    exception.ServiceUnavailable(service='Glance', reason='down'),
])
def test_no_conductor_answering_hands_the_notification_back(
        endpoint, conductor, slept, conf, error):
    conf.config(group='consumer', requeue_delay=7)
    conductor.errors['gpu-hosts'] = error
    assert deliver(endpoint, sample('glance-image.activate')) == REQUEUE
    assert slept == [7]
    # Not remembered: its redelivery is handled in full.
    del conductor.errors['gpu-hosts']
    conductor.calls.clear()
    assert deliver(endpoint, sample('glance-image.activate')) == HANDLED
    assert len(conductor.calls) == 3


def test_an_unexpected_error_is_logged_and_acknowledged(endpoint, conductor,
                                                        caplog):
    conductor.errors['gpu-hosts'] = KeyError('bug')
    assert deliver(endpoint, sample('glance-image.activate')) == HANDLED
    assert 'Notification m-1 (image.activate from image.localhost) could ' \
        'not be handled; dropped' in caplog.text


def test_versioned_add_host_reconciles_the_aggregate(endpoint, conductor):
    assert deliver(endpoint, sample('nova-aggregate.add_host.end')) == \
        HANDLED
    assert conductor.calls == [('reconcile', '1', None,
                                'consumer:aggregate.add_host.end')]


def test_legacy_add_host_reconciles_the_new_host(endpoint, conductor):
    assert deliver(endpoint, sample('nova-aggregate.addhost.end')) == \
        HANDLED
    assert conductor.calls == [('reconcile', '1', ['compute'],
                                'consumer:aggregate.addhost.end')]


def test_update_metadata_reconciles_the_aggregate(endpoint, conductor,
                                                  caplog):
    caplog.set_level(logging.INFO)
    conductor.reconcile = lambda ctxt, aggregate, hosts=None, \
        source=None: None  # type: ignore[method-assign]
    assert deliver(endpoint, sample('nova-aggregate.update_metadata.end')) \
        == HANDLED
    assert 'aggregate 1, every host: nothing missing, no job' in caplog.text
