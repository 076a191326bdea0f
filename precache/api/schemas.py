"""Request schemas (JSON Schema), Nova's where Nova has one.

``CACHE_IMAGES`` is Nova's ``aggregate_images`` schema of 2.81 unchanged;
the duplicate check that Nova does by raw string is done here on
normalised UUIDs, so ``ABC…`` and ``abc…`` count as one image. The
OpenAPI document embeds the same schema (a test keeps them equal).
"""

from __future__ import annotations

import collections
import uuid
from typing import Any

import jsonschema
import webob.exc
from oslo_utils import uuidutils

IMAGE_ID = {'type': 'string', 'format': 'uuid'}

CACHE_IMAGES: dict[str, Any] = {
    'type': 'object',
    'properties': {
        'cache': {
            'type': 'array',
            'minItems': 1,
            'items': {
                'type': 'object',
                'properties': {'id': IMAGE_ID},
                'required': ['id'],
                'additionalProperties': False,
            },
        },
    },
    'required': ['cache'],
    'additionalProperties': False,
}

_formats = jsonschema.FormatChecker(formats=())


@_formats.checks('uuid')
def _is_uuid(instance: object) -> bool:
    # NOTE: Nova's check (oslo.utils): upper case, no dashes, braces and
    # urn:uuid: pass; non-strings are left to "type".
    return not isinstance(instance, str) or uuidutils.is_uuid_like(instance)


_validators = {id(CACHE_IMAGES): jsonschema.Draft4Validator(
    CACHE_IMAGES, format_checker=_formats)}


def _where(error: jsonschema.ValidationError) -> str:
    return '/'.join(str(part) for part in error.absolute_path) or 'body'


def validate(schema: dict[str, Any], body: Any) -> None:
    """400 with Nova's wording when ``body`` does not fit ``schema``."""
    validator = _validators.get(id(schema)) or jsonschema.Draft4Validator(
        schema, format_checker=_formats)
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return
    value = repr(error.instance)
    if len(value) > 100:
        value = value[:97] + '...'
    message = error.message
    if len(message) > 300:
        message = message[:297] + '...'
    raise webob.exc.HTTPBadRequest(
        detail='Invalid input for field/attribute %s. Value: %s. %s'
               % (_where(error), value, message))


def image_ids(body: dict[str, Any]) -> list[str]:
    """The images of a valid CACHE_IMAGES body, normalised, no repeats."""
    ids = [str(uuid.UUID(item['id'])) for item in body['cache']]
    repeated = sorted(i for i, n in collections.Counter(ids).items()
                      if n > 1)
    if repeated:
        raise webob.exc.HTTPBadRequest(
            detail='Duplicate images in request: %s' % ', '.join(repeated))
    return ids
