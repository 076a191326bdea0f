"""Version documents and the OpenAPI description (no token needed)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import webob
import yaml

from precache.api import microversion, util


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document shipped in the package (openapi.yaml)."""
    text = resources.files('precache.api').joinpath(
        'openapi.yaml').read_text(encoding='utf-8')
    return yaml.safe_load(text)


@functools.cache
def _document_bytes() -> bytes:
    return json.dumps(document(), sort_keys=True).encode('utf-8')


def _v21(req: util.Request) -> dict[str, Any]:
    base = req.base_url
    return {
        'id': 'v2.1', 'status': 'CURRENT',
        'version': microversion.text(microversion.MAX_VERSION),
        'min_version': microversion.text(microversion.MIN_VERSION),
        'updated': '2013-07-23T11:33:21Z',
        'links': [{'rel': 'self', 'href': base + '/v2.1/'},
                  {'rel': 'describedby',
                   'type': 'application/vnd.oai.openapi+json',
                   'href': base + '/openapi.json'}],
        'media-types': [{'base': 'application/json',
                         'type': 'application/vnd.openstack.compute+json;'
                                 'version=2.1'}],
    }


def versions(req: util.Request) -> webob.Response:
    """The root: Nova's version list, plus ``version`` for novaclient.

    keystoneauth (openstacksdk) reads ``versions`` and follows the v2.1
    link; novaclient's discovery reads ``version`` from the endpoint it
    was given, which may be this root.
    """
    current = _v21(req)
    return util.json_response({'versions': [current], 'version': current})


def version(req: util.Request) -> webob.Response:
    return util.json_response({'version': _v21(req)})


def openapi(req: util.Request) -> webob.Response:
    resp = webob.Response(content_type='application/json', charset='UTF-8')
    resp.body = _document_bytes()
    return resp
