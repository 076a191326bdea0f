"""Parsing Glance's and Nova's notifications, from their own samples."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from precache import exception
from precache.consumer import events

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    __file__))), 'functional', 'samples')


def sample(name: str) -> dict[str, Any]:
    with open(os.path.join(SAMPLES, name + '.json')) as stream:
        return dict(json.load(stream))


@pytest.mark.parametrize('name', ['glance-image.activate',
                                  'glance-image.update'])
def test_glance_samples(name):
    message = sample(name)
    event = events.parse_image(message['event_type'], message['payload'],
                               'precache_aggregates', 'precache:')
    assert event == events.ImageEvent(
        image_id='513876a7-2f03-4190-b9f9-f4a138f0599b', status='active',
        aggregates=('gpu-hosts', 'edge', 'ssd-hosts'))


def test_property_name_and_tag_prefix_are_configurable():
    payload = {'id': 'i1', 'status': 'active',
               'properties': {'cache_on': ' a ,, b,a ', 'other': 'x'},
               'tags': ['warm/b', 'warm/c', 'cold/d', 7]}
    assert events.parse_image('image.update', payload, 'cache_on',
                              'warm/').aggregates == ('a', 'b', 'c')
    assert events.parse_image('image.update', payload, 'cache_on',
                              '').aggregates == ('a', 'b')
    assert events.parse_image('image.update', payload, 'nothing',
                              'none:').aggregates == ()


def test_an_image_without_properties_or_tags_names_nothing():
    event = events.parse_image('image.activate',
                               {'id': 'i1', 'status': 'queued'}, 'p', 'x:')
    assert event == events.ImageEvent('i1', 'queued', ())


@pytest.mark.parametrize('payload,reason', [
    ('not an object', 'payload is not an object'),
    (None, 'payload is not an object'),
    ({'name': 'no id'}, 'image id is missing or empty'),
    ({'id': ''}, 'image id is missing or empty'),
    ({'id': True}, 'image id is missing or empty'),
    ({'id': 'i1', 'properties': ['x']}, 'properties is not an object'),
    ({'id': 'i1', 'tags': 'precache:a'}, 'tags is not a list'),
])
def test_malformed_image_payloads(payload, reason):
    with pytest.raises(exception.MalformedNotification) as info:
        events.parse_image('image.activate', payload, 'p', 'x:')
    assert str(info.value) == ('Notification image.activate cannot be '
                               'used: %s' % reason)


def test_nova_versioned_add_host_names_the_aggregate_only():
    message = sample('nova-aggregate.add_host.end')
    assert events.parse_aggregate(message['event_type'],
                                  message['payload']) == \
        events.AggregateEvent('1', None)


def test_nova_legacy_add_host_names_the_host():
    message = sample('nova-aggregate.addhost.end')
    assert events.parse_aggregate(message['event_type'],
                                  message['payload']) == \
        events.AggregateEvent('1', ('compute',))


def test_nova_update_metadata():
    message = sample('nova-aggregate.update_metadata.end')
    assert events.parse_aggregate(message['event_type'],
                                  message['payload']) == \
        events.AggregateEvent('1', None)
    assert events.parse_aggregate(
        'aggregate.updatemetadata.end',
        {'aggregate_id': 5, 'meta_data': {'precache:images': 'x'}}) == \
        events.AggregateEvent('5', None)


def test_versioned_payload_without_id_falls_back_to_uuid():
    payload = {'nova_object.data': {'uuid': 'u-1', 'name': 'n'}}
    assert events.parse_aggregate('aggregate.add_host.end', payload) == \
        events.AggregateEvent('u-1')


@pytest.mark.parametrize('event_type,payload,reason', [
    ('aggregate.add_host.end', [], 'payload is not an object'),
    ('aggregate.add_host.end', {'nova_object.data': 'x'},
     'nova_object.data is not an object'),
    ('aggregate.add_host.end', {'nova_object.data': {'hosts': []}},
     'aggregate id is missing or empty'),
    ('aggregate.addhost.end', {'host_name': 'h'},
     'aggregate_id is missing or empty'),
    ('aggregate.addhost.end', {'aggregate_id': 1},
     'host_name is missing or empty'),
])
def test_malformed_aggregate_payloads(event_type, payload, reason):
    with pytest.raises(exception.MalformedNotification) as info:
        events.parse_aggregate(event_type, payload)
    assert reason in str(info.value)
