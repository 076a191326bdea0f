"""keystonemiddleware in the real path, against a real Keystone; policy.

Tokens come from Keystone and are validated by auth_token in the
precache-api process with its own service user. Roles: ``admin`` (and
``operator``, admin in project demo) may create, cancel and read;
``reader``, ``member`` (member implies reader) and ``observer`` may do
none of it: jobs and aggregates name compute hosts and every project's
images, and Nova keeps aggregate reads admin-only too.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import Served, cache_body, fault

JOB = '0d0e4c9c-8a7b-4b1f-9d2b-6c7e5f4a3b21'


@pytest.fixture(scope='module')
def tokens(keystone):
    return {user: keystone.token(user)
            for user in ('admin', 'operator', 'reader', 'member',
                         'observer')}


def as_user(api, tokens, user) -> Served:
    return Served(api.url, {'X-Auth-Token': tokens[user]})


@pytest.mark.parametrize('headers', [{}, {'X-Auth-Token': 'notused'},
                                     {'X-Auth-Token': 'gAAAAABbogus'}])
@pytest.mark.parametrize('method, path', [
    ('POST', '/os-aggregates/11/images'), ('GET', '/jobs'),
    ('GET', '/jobs/%s' % JOB), ('DELETE', '/jobs/%s' % JOB),
    ('GET', '/v2.1/os-aggregates/11/images'),
    ('GET', '/v2/images?id=in:%s' % JOB)])
def test_no_or_bad_token_is_401(api, headers, method, path):
    resp = Served(api.url, headers).request(
        method, path, json=cache_body(JOB) if method == 'POST' else None)
    message = fault(resp, 401)
    assert 'authentication' in message
    assert 'unauthorized' in resp.json()
    assert resp.headers['WWW-Authenticate'].startswith('Keystone uri=')


def test_public_documents_need_no_token(api):
    for path in ('/', '/v2.1', '/v2.1/', '/openapi.json'):
        assert Served(api.url, {}).get(path).status_code == 200, path


@pytest.mark.parametrize('user', ['reader', 'member', 'observer'])
def test_non_admin_cannot_create_jobs_403(api, world, tokens, user):
    before = world.job_count()
    message = fault(as_user(api, tokens, user).post(
        '/os-aggregates/11/images', json=cache_body(world.add_image())),
        403)
    assert 'compute:aggregates:images' in message
    assert 'forbidden' in as_user(api, tokens, user).post(
        '/os-aggregates/11/images', json=cache_body(JOB)).json()
    assert world.job_count() == before


@pytest.mark.parametrize('user', ['reader', 'member', 'observer'])
def test_non_admin_cannot_cancel_403(api, tokens, user):
    fault(as_user(api, tokens, user).delete('/jobs/%s' % JOB), 403)


READS = ['/jobs', '/jobs/%s' % JOB, '/os-aggregates/11/images',
         '/os-aggregates', '/os-aggregates/11', '/v2.1/os-aggregates',
         '/v2.1/jobs', '/v2/images?id=in:%s' % JOB, '/v2/images/%s' % JOB,
         '/v2.1/v2/images?id=in:%s' % JOB]


@pytest.mark.parametrize('path', READS)
@pytest.mark.parametrize('user', ['reader', 'member', 'observer'])
def test_non_admin_cannot_read_403(api, tokens, user, path):
    message = fault(as_user(api, tokens, user).get(path), 403)
    assert "Policy doesn't allow" in message


def test_member_sees_no_job_of_anyone(api, world, tokens):
    """What the member was refused is there: an admin's job."""
    resp = as_user(api, tokens, 'admin').post(
        '/os-aggregates/api-one/images', json=cache_body(world.add_image()))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()['job']['id']
    member = as_user(api, tokens, 'member')
    for path in ('/jobs', '/jobs/%s' % job_id):
        resp = member.get(path)
        assert resp.status_code == 403, resp.text
        assert job_id not in resp.text and 'api-h2' not in resp.text
    world.wait(job_id)


def test_admins_create_and_read(api, world, tokens):
    image = world.add_image()
    for admin in ('admin', 'operator'):
        resp = as_user(api, tokens, admin).post(
            '/os-aggregates/api-all/images', json=cache_body(image))
        assert resp.status_code == 202, resp.text
        job_id = resp.json()['job']['id']
        world.wait(job_id)
        served = as_user(api, tokens, admin)
        shown = served.get('/jobs/%s' % job_id)
        assert shown.status_code == 200, shown.text
        assert shown.json()['job']['state'] == 'done'
        listed = served.get('/jobs', params={'aggregate': 'api-all'})
        assert job_id in [j['id'] for j in listed.json()['jobs']]
        resident = served.get('/os-aggregates/11/images').json()
        assert sorted(resident['images'][image]) == [
            'api-h1', 'api-h2', 'api-h3']
        aggregate = served.get('/os-aggregates/11').json()['aggregate']
        assert aggregate['hosts'] == ['api-h1', 'api-h2', 'api-h3']
        names = [a['name'] for a in
                 served.get('/os-aggregates').json()['aggregates']]
        assert names == ['api-all', 'api-one', 'api-empty']


def test_token_checked_before_anything_else(api, tokens):
    """401 beats 400, 404 and 405; 403 beats 400."""
    fault(Served(api.url, {}).post('/os-aggregates/11/images',
                                   data=b'{broken'), 401)
    fault(Served(api.url, {}).get('/jobs/not-a-uuid'), 401)
    fault(Served(api.url, {}).get('/no/such/thing'), 401)
    fault(as_user(api, tokens, 'reader').post(
        '/os-aggregates/11/images', data=b'{broken'), 403)
