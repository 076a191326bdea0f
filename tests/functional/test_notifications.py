"""The conductor's notifications from a real job, as a listener gets them."""

from __future__ import annotations

from precache import objects
from tests.functional.harness import Cluster
from tests.functional.notify import Listener, documented_fields


def test_a_job_sends_the_documented_notifications(cluster: Cluster) -> None:
    """Two images on three hosts, one of them without a running agent."""
    topic = 'precache-events-%s' % cluster.tag
    images = [cluster.make_image('alpha', blocks=6),
              cluster.make_image('beta', blocks=4)]
    aggregate = cluster.add_aggregate('events', ['cmp1', 'cmp2', 'down'])
    agents = [cluster.agent(short).start() for short in ('cmp1', 'cmp2')]
    conductor = cluster.make_conductor(agent_ping_timeout=2)
    conductor.rewrite_config('notifications', enabled=True, topics=topic)
    conductor.start()
    for service in (*agents, conductor):
        service.wait_ready()

    with Listener(cluster.transport_url, 'precache', topic) as listener:
        job = cluster.wait_job(cluster.submit(aggregate, images).id)
        received = listener.wait_for('precache.job.end')
    assert job.state is objects.JobState.DONE

    publisher = 'precache-conductor.%s' % cluster.host('conductor')
    assert {p for p, _, _ in received} == {publisher}
    types = [e for _, e, _ in received]
    assert types[:2] == ['aggregate.cache_images.start', 'precache.job.start']
    assert types[-2:] == ['aggregate.cache_images.end', 'precache.job.end']
    assert len(types) == 2 + 3 + 6 + 2  # start, progress, images, end

    # Every payload carries exactly the fields docs/notifications.md lists.
    documented = documented_fields()
    for _, event_type, payload in received:
        if event_type.startswith('aggregate.'):
            assert set(payload) == {'nova_object.name', 'nova_object.data',
                                    'nova_object.namespace',
                                    'nova_object.version'}
            payload = payload['nova_object.data']
        assert set(payload) == documented[event_type], event_type

    hosts = sorted(cluster.host(s) for s in ('cmp1', 'cmp2', 'down'))
    image_ids = [i.id for i in images]
    by_type: dict[str, list[dict]] = {}
    for _, event_type, payload in received:
        by_type.setdefault(event_type, []).append(payload)
    start = by_type['aggregate.cache_images.start'][0]
    assert start['nova_object.name'] == 'AggregatePayload'
    assert start['nova_object.version'] == '1.1'
    assert start['nova_object.data'] == {
        'id': 100, 'uuid': cluster.aggregates[0]['uuid'],
        'name': aggregate, 'hosts': hosts, 'metadata': {}}
    assert by_type['aggregate.cache_images.end'][0] == start

    progress = [p['nova_object.data'] for p in
                by_type['aggregate.cache_images.progress']]
    assert sorted(p['index'] for p in progress) == [1, 2, 3]
    assert {p['total'] for p in progress} == {3}
    by_host = {p['host']: p for p in progress}
    assert sorted(by_host) == hosts
    for short in ('cmp1', 'cmp2'):
        assert sorted(by_host[cluster.host(short)]['images_cached']) == \
            sorted(image_ids)
        assert by_host[cluster.host(short)]['images_failed'] == []
    assert by_host[cluster.host('down')]['images_cached'] == []
    assert sorted(by_host[cluster.host('down')]['images_failed']) == \
        sorted(image_ids)

    cached = by_type['precache.image.cached']
    assert sorted((p['host'], p['image_id']) for p in cached) == sorted(
        (cluster.host(s), i) for s in ('cmp1', 'cmp2') for i in image_ids)
    size = {i.id: i.size for i in images}
    for payload in cached:
        assert payload['job_id'] == job.id
        assert payload['aggregate'] == aggregate
        assert payload['state'] == 'cached'
        assert payload['method'] == 'file'
        assert payload['bytes'] == size[payload['image_id']]
        assert payload['seconds'] >= 0 and payload['reason'] is None
    skipped = by_type['precache.image.skipped']
    assert sorted(p['image_id'] for p in skipped) == sorted(image_ids)
    assert all(p['host'] == cluster.host('down') and 'ping' in p['reason']
               for p in skipped)

    assert by_type['precache.job.start'][0] == {
        'job_id': job.id, 'aggregate': aggregate, 'image_ids': image_ids,
        'hosts': 3, 'options': {}, 'resumed': False}
    end = by_type['precache.job.end'][0]
    assert end['job_id'] == job.id and end['state'] == 'done'
    assert end['counts'] == {'cached': 4, 'existing': 0, 'error': 0,
                             'unsupported': 0, 'skipped': 2}
    assert end['counts'] == {k: job.counts[k] for k in end['counts']}
    assert 0 < end['seconds'] < 60
