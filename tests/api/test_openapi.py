"""The OpenAPI document: served, true to the routes, and fuzzed.

schemathesis generates requests from the document (valid and invalid
bodies, paths, query strings, headers) against precache-api behind
keystonemiddleware, wired to the real conductor over RabbitMQ, with every
one of its checks: no answer may be a 5xx, every answer must match what
the document promises, invalid data must be refused. Schema-valid data
may still be refused by contract: random image ids do not exist (400, as
in Nova), random aggregates and jobs neither (404), a finished job cannot
be cancelled (409).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from precache.api import router, schemas
from precache.api.handlers import root

api_schema = schemathesis.openapi.from_dict(
    root.document(), config=SchemathesisConfig.from_dict({'checks': {
        'positive_data_acceptance': {
            'expected-statuses': ['2xx', '400', '404', '409']},
        # NOTE: schemathesis's own list, plus 414: a query string
        # longer than the server reads is refused before the app sees it.
        'negative_data_rejection': {
            'expected-statuses': ['400', '401', '403', '404', '405', '406',
                                  '409', '414', '415', '422', '428', '429',
                                  '5xx']}}}))

HTTP_METHODS = {'get', 'post', 'put', 'patch', 'delete', 'head'}


def _documented() -> dict[str, set[str]]:
    return {path: {m.upper() for m in item if m in HTTP_METHODS}
            for path, item in root.document()['paths'].items()}


def test_document_matches_the_routes():
    routed = {path: set(methods) for path, methods in
              {**router.PUBLIC, **router.ROUTES}.items()}
    assert _documented() == routed


def test_every_route_is_served_under_v21_too(noauth):
    for path in router.ROUTES:
        concrete = path.replace('{aggregate_id}', '13').replace(
            '{job_id}', '3f0c2b1e-5a7d-4c8e-9b6a-2d1e0f9c8b7a')
        for prefix in ('', '/v2.1'):
            resp = noauth.get(prefix + concrete)
            assert resp.status_code in (200, 404), (prefix, path, resp.text)
            if resp.status_code == 404:
                assert 'No such resource' not in resp.text, (prefix, path)


def test_post_schema_is_the_validators():
    operation = root.document()['paths'][
        '/os-aggregates/{aggregate_id}/images']['post']
    schema = operation['requestBody']['content']['application/json'][
        'schema']
    ref = schema['$ref'].split('/')[-1]
    assert root.document()['components']['schemas'][ref] == \
        schemas.CACHE_IMAGES


def test_served_document_is_the_file(noauth):
    resp = noauth.get('/openapi.json')
    assert resp.status_code == 200
    assert resp.headers['Content-Type'].startswith('application/json')
    assert resp.json() == root.document()


def test_document_is_valid_openapi():
    from openapi_spec_validator import validate
    validate(root.document())


@api_schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_check(case, api, admin_token):
    """Against precache-api behind keystonemiddleware, as an admin."""
    case.call_and_validate(base_url=api.url,
                           headers={'X-Auth-Token': admin_token})
