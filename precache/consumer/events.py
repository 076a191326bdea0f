"""What the consumer reads in Glance's and Nova's notifications.

Pure functions over payloads as the services send them (samples, with
where each came from, under tests/functional/samples/). Anything that
does not have the expected shape raises MalformedNotification.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from precache import exception, objects

#: Glance: the image payload of ``format_image_notification``.
IMAGE_EVENTS = ('image.activate', 'image.update')
#: Nova: versioned (``AggregatePayload``, which does not name the added
#: host) and legacy (``{aggregate_id, host_name}``) forms.
ADD_HOST_EVENTS = ('aggregate.add_host.end', 'aggregate.addhost.end')
METADATA_EVENTS = ('aggregate.update_metadata.end',
                   'aggregate.updatemetadata.end')
HANDLED_EVENTS = IMAGE_EVENTS + ADD_HOST_EVENTS + METADATA_EVENTS


@dataclasses.dataclass(frozen=True)
class ImageEvent:
    image_id: str
    status: str | None
    aggregates: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AggregateEvent:
    """``aggregate``: Nova's id (the conductor resolves id, uuid or name);
    ``hosts``: the hosts concerned, None when the payload does not say."""

    aggregate: str
    hosts: tuple[str, ...] | None = None


def _malformed(event_type: str, reason: str
               ) -> exception.MalformedNotification:
    return exception.MalformedNotification(event_type=event_type,
                                           reason=reason)


def _mapping(event_type: str, value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(event_type, '%s is not an object' % what)
    return value


def _text(event_type: str, value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) \
            or not str(value).strip():
        raise _malformed(event_type, '%s is missing or empty' % what)
    return str(value).strip()


def parse_image(event_type: str, payload: Any, image_property: str,
                tag_prefix: str) -> ImageEvent:
    """Glance ``image.activate`` / ``image.update``."""
    payload = _mapping(event_type, payload, 'payload')
    image_id = _text(event_type, payload.get('id'), 'image id')
    properties = _mapping(event_type, payload.get('properties') or {},
                          'properties')
    tags = payload.get('tags') or []
    if not isinstance(tags, list):
        raise _malformed(event_type, 'tags is not a list')
    status = payload.get('status')
    return ImageEvent(
        image_id=image_id, status=status if isinstance(status, str)
        else None,
        aggregates=objects.aggregates_named(properties, tags,
                                            image_property, tag_prefix))


def parse_aggregate(event_type: str, payload: Any) -> AggregateEvent:
    """Nova ``aggregate.add_host.end`` / ``update_metadata.end``, versioned
    or legacy."""
    payload = _mapping(event_type, payload, 'payload')
    if 'nova_object.data' in payload:
        data = _mapping(event_type, payload['nova_object.data'],
                        'nova_object.data')
        ref = data.get('id')
        if ref is None:
            ref = data.get('uuid') or data.get('name')
        return AggregateEvent(_text(event_type, ref, 'aggregate id'))
    aggregate = _text(event_type, payload.get('aggregate_id'),
                      'aggregate_id')
    if event_type in ADD_HOST_EVENTS:
        host = _text(event_type, payload.get('host_name'), 'host_name')
        return AggregateEvent(aggregate, (host,))
    return AggregateEvent(aggregate)
