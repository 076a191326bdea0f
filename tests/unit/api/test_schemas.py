"""Request bodies: JSON parsing and Nova's ``aggregate_images`` schema.

A 400 names the field that is wrong and the conductor is never called.
"""

from __future__ import annotations

import json

import pytest
import webob.exc

from precache.api import schemas, util
from tests.unit.api.conftest import IMAGE_ID, cache_body, fault

POST = '/os-aggregates/11/images'


@pytest.mark.parametrize('body, words', [
    ({}, ["Invalid input for field/attribute body.",
          "'cache' is a required property"]),
    ({'cache': []}, ['field/attribute cache.', 'Value: []']),
    ({'cache': {}}, ['field/attribute cache.', "is not of type 'array'"]),
    ({'cache': [{}]}, ['field/attribute cache/0.',
                       "'id' is a required property"]),
    ({'cache': [{'id': 'not-a-uuid'}]},
     ['field/attribute cache/0/id.', "'not-a-uuid'"]),
    ({'cache': [{'id': 5}]},
     ['field/attribute cache/0/id.', "is not of type 'string'"]),
    ({'cache': [{'id': IMAGE_ID, 'name': 'x'}]},
     ['field/attribute cache/0.', "'name' was unexpected"]),
    ({'cache': [{'id': IMAGE_ID}], 'force': True},
     ['field/attribute body.', "'force' was unexpected"]),
    ([{'id': IMAGE_ID}], ['field/attribute body.', "is not of type"]),
])
def test_schema_errors_are_400_naming_the_field(client, conductor, body,
                                                words):
    message = fault(client('POST', POST, json=body), 400)
    for word in words:
        assert word in message, message
    assert conductor.calls == []


def test_second_item_is_named_by_its_index(client):
    message = fault(client('POST', POST, json=cache_body(IMAGE_ID, 'x')),
                    400)
    assert 'field/attribute cache/1/id.' in message


def test_duplicates_in_other_spellings_are_400(client, conductor):
    message = fault(client('POST', POST, json=cache_body(
        IMAGE_ID, '{%s}' % IMAGE_ID.upper())), 400)
    assert message == 'Duplicate images in request: %s' % IMAGE_ID
    assert conductor.calls == []


def test_other_spellings_reach_the_conductor_normalised(client, conductor):
    resp = client('POST', POST, json=cache_body(
        IMAGE_ID.upper().replace('-', '')))
    assert resp.status_int == 202, resp.text
    assert conductor.calls[0].args[2] == [IMAGE_ID]


@pytest.mark.parametrize('body, content_type, code, words', [
    (b'', 'application/json', 400, 'body is empty'),
    (b'   ', 'application/json', 400, 'body is empty'),
    (b'{broken', 'application/json', 400, 'Malformed request body'),
    (b'\xff\xfe', 'application/json', 400, 'Malformed request body'),
    (b'{}', 'text/plain', 415, 'text/plain is not supported'),
    (b'[' * 40 + b']' * 40, 'application/json', 400, 'more than 32 deep'),
])
def test_bad_bodies(client, conductor, body, content_type, code, words):
    resp = client('POST', POST, body=body, content_type=content_type)
    assert words in fault(resp, code)
    assert conductor.calls == []


def test_json_suffix_media_types_are_json(client):
    resp = client('POST', POST, body=json.dumps(cache_body(IMAGE_ID))
                  .encode(), content_type='application/vnd.x+json')
    assert resp.status_int == 202, resp.text


# -- the validators on their own ----------------------------------------------


def test_long_values_are_cut_in_the_message():
    with pytest.raises(webob.exc.HTTPBadRequest) as caught:
        schemas.validate(schemas.CACHE_IMAGES,
                         {'cache': [{'id': 'x' * 500}]})
    detail = caught.value.detail
    assert "Value: '%s..." % ('x' * 96) in detail
    assert len(detail) < 500 and detail.endswith('...')


@pytest.mark.parametrize('value', [
    IMAGE_ID, IMAGE_ID.upper(), IMAGE_ID.replace('-', ''),
    '{%s}' % IMAGE_ID, 'urn:uuid:%s' % IMAGE_ID])
def test_nova_accepts_these_uuid_spellings(value):
    schemas.validate(schemas.CACHE_IMAGES, cache_body(value))
    assert schemas.image_ids(cache_body(value)) == [IMAGE_ID]


def test_depth_counts_arrays_and_objects():
    assert util._depth(1) == 0
    assert util._depth({'a': [1, {'b': []}]}) == 4


@pytest.mark.parametrize('value', ['not-a-uuid', '', IMAGE_ID + 'ff'])
def test_canonical_uuid_names_what_is_wrong(value):
    with pytest.raises(webob.exc.HTTPBadRequest) as caught:
        util.canonical_uuid(value, 'job id')
    assert caught.value.detail.startswith('job id ')
    assert 'is not a UUID' in caught.value.detail
