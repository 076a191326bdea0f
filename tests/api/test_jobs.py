"""Jobs through the API: every host shown, listing, cancel, residency.

The conductor and agents run over RabbitMQ (see conftest.World).
"""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import AGGREGATE_UUID, HOSTS, cache_body, fault


def _post(noauth, ref, *images):
    resp = noauth.post('/os-aggregates/%s/images' % ref,
                       json=cache_body(*images))
    assert resp.status_code == 202, resp.text
    return resp.json()['job']


def _wait(noauth, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        job = noauth.get('/jobs/%s' % job_id).json()['job']
        if job['state'] not in ('pending', 'running'):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_post_runs_over_rabbitmq_and_get_shows_every_host(noauth, world):
    first, second = world.add_image(), world.add_image(size=96 * 1024)
    accepted = _post(noauth, 11, first, second)
    assert accepted['state'] in ('pending', 'running')
    assert accepted['options'] == {'source': 'api'}
    job = _wait(noauth, accepted['id'])
    assert job['state'] == 'done'
    assert job['hosts'] == 3
    assert job['counts']['cached'] == 6
    rows = {(r['host'], r['image_id']): r for r in job['results']}
    assert set(rows) == {(h, i) for h in HOSTS for i in (first, second)}
    for (host, image), row in rows.items():
        assert row['state'] == 'cached'
        assert row['method'] == 'file'
        assert row['bytes'] == (64 if image == first else 96) * 1024
        assert row['seconds'] >= 0 and row['reason'] is None
        assert row['cell'] == ('cell-b' if host == 'api-h3' else 'cell-a')
        assert row['finished_at'] >= row['started_at']
    again = _wait(noauth, _post(noauth, 'api-all', first)['id'])
    assert {r['state'] for r in again['results']} == {'existing'}


def test_list_filters_and_pages(noauth, world):
    image = world.add_image()
    ids = [_post(noauth, 12, image)['id'] for _ in range(5)]
    for job_id in ids:
        _wait(noauth, job_id)
    for ref in ('api-one', '12'):
        listed = noauth.get('/jobs', params={'aggregate': ref,
                                             'state': 'done'}).json()
        assert [j['id'] for j in listed['jobs']][:5] == ids[::-1]
        assert all(j['aggregate'] == 'api-one' for j in listed['jobs'])
        assert 'results' not in listed['jobs'][0]
    seen, url = [], '/jobs?aggregate=api-one&limit=2'
    while url:
        page = noauth.get(url.replace(noauth.url, '')).json()
        assert len(page['jobs']) <= 2
        seen += [j['id'] for j in page['jobs']]
        links = page.get('jobs_links') or []
        url = links[0]['href'] if links else None
    assert seen[:5] == ids[::-1]
    assert len(seen) == len(set(seen))
    cancelled = noauth.get('/jobs', params={'state': 'cancelled'}).json()
    assert all(j['state'] == 'cancelled' for j in cancelled['jobs'])
    assert noauth.get('/jobs', params={'aggregate': 'nobody'}).json() == {
        'jobs': []}


def test_limit_is_capped(noauth, world, conf):
    conf.config(group='api', max_limit=2)
    image = world.add_image()
    for _ in range(3):
        _post(noauth, 13, image)
    page = noauth.get('/jobs?limit=500').json()
    assert len(page['jobs']) == 2
    assert 'limit=2' in page['jobs_links'][0]['href']


def test_cancel_lets_hosts_in_flight_finish(noauth, world, conf):
    # One host at a time, each ~1 s: cancel while the first is fetching.
    conf.config(group='conductor', max_concurrent_hosts=1)
    conf.config(group='agent', download_rate_limit=256, chunk_size=64)
    image = world.add_image(size=256 * 1024)
    job_id = _post(noauth, AGGREGATE_UUID, image)['id']
    deadline = time.monotonic() + 20
    while noauth.get('/jobs/%s' % job_id).json()['job']['counts'][
            'running'] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    resp = noauth.delete('/jobs/%s' % job_id)
    assert resp.status_code == 202, resp.text
    cancelling = resp.json()['job']
    assert cancelling['state'] == 'running'
    assert cancelling['reason'] == 'cancelled by request'
    assert cancelling['counts']['running'] == 1
    assert cancelling['counts']['skipped'] == 2
    assert noauth.delete('/jobs/%s' % job_id).status_code == 202
    job = _wait(noauth, job_id)
    assert job['state'] == 'cancelled'
    states = sorted((r['state'], r['reason']) for r in job['results'])
    assert states == [('cached', None), ('skipped', 'cancelled'),
                      ('skipped', 'cancelled')]
    assert 'already cancelled' in fault(
        noauth.delete('/jobs/%s' % job_id), 409)


def test_cancel_with_nothing_in_flight_is_immediate(noauth, world, conf):
    conf.config(group='conductor', max_concurrent_hosts=1)
    conf.config(group='agent', download_rate_limit=256, chunk_size=64)
    busy = _post(noauth, 12, world.add_image(size=256 * 1024))['id']
    waiting = _post(noauth, 11, world.add_image())['id']
    resp = noauth.delete('/jobs/%s' % waiting)
    assert resp.status_code == 202, resp.text
    assert resp.json()['job']['state'] == 'cancelled'
    job = noauth.get('/jobs/%s' % waiting).json()['job']
    assert {r['state'] for r in job['results']} == {'skipped'}
    assert _wait(noauth, busy)['state'] == 'done'
    assert _wait(noauth, waiting)['state'] == 'cancelled'


def test_cancel_finished_job_is_409(noauth, world):
    job_id = _post(noauth, 12, world.add_image())['id']
    _wait(noauth, job_id)
    assert 'already done' in fault(noauth.delete('/jobs/%s' % job_id), 409)


@pytest.mark.parametrize('ref', ['11', 'api-all', AGGREGATE_UUID])
def test_resident_images_as_last_reported(noauth, world, ref):
    image = world.add_image()
    _wait(noauth, _post(noauth, 12, image)['id'])
    resident = noauth.get('/os-aggregates/%s/images' % ref).json()
    assert resident['aggregate'] == {'id': '11', 'name': 'api-all',
                                     'uuid': AGGREGATE_UUID}
    assert [h['host'] for h in resident['hosts']] == HOSTS
    assert resident['images'][image] == ['api-h2']
    h2 = next(h for h in resident['hosts'] if h['host'] == 'api-h2')
    entry = next(i for i in h2['images'] if i['id'] == image)
    assert entry['state'] == 'cached' and entry['method'] == 'file'
    assert entry['job_id'] and entry['reported_at']


def test_resident_images_of_empty_and_unknown_aggregates(noauth):
    assert noauth.get('/os-aggregates/13/images').json()['hosts'] == []
    fault(noauth.get('/os-aggregates/nowhere/images'), 404)


def test_images_the_caller_may_not_see_are_400(noauth, world):
    """Glance's visibility over the local catalog, for non-admin callers
    (the API sends its caller; the default policy lets only admins POST,
    and admins see every image)."""
    from precache import exception

    private = world.add_image(visibility='private', owner='project-b')
    shared = world.add_image(visibility='shared', owner='project-b',
                             members=['project-a'])
    public = world.add_image(visibility='public', owner='project-b')
    caller = {'project_id': 'project-a', 'is_admin': False}
    before = world.job_count()
    with pytest.raises(exception.ImageNotFound) as info:
        world.rpc.cache_images({}, 'api-one', [public, private],
                               caller=caller)
    assert private in str(info.value)
    assert world.job_count() == before
    job = world.rpc.cache_images({}, 'api-one', [public, shared],
                                 caller=caller)
    assert world.wait(job.id).state.value == 'done'
    for who in ({'project_id': 'project-b', 'is_admin': False},
                {'project_id': 'project-a', 'is_admin': True}, None):
        world.wait(world.rpc.cache_images({}, 'api-one', [private],
                                          caller=who).id)
    # Through the API (noauth: an admin) the private image is fine too.
    assert noauth.post('/os-aggregates/12/images',
                       json=cache_body(private)).status_code == 202
