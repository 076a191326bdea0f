"""precache-consumer over RabbitMQ: Glance's and Nova's notifications, as
their samples show them (tests/functional/samples), turned into jobs of a
real conductor and agents."""

from __future__ import annotations

import json
import re

from precache import objects, rpc
from tests.functional.harness import Cluster
from tests.functional.notify import consumer, publish, publish_raw, sample

JOB_LINE = r'Notification %s \(%s\): aggregate %s, .*: job ([0-9a-f-]{36})'


def _jobs(cluster: Cluster, aggregate: str) -> list[objects.Job]:
    return cluster.api.list_jobs(rpc.request_context(), aggregate=aggregate)


def _job_of(service, message_id: str, event_type: str,
            aggregate: str) -> str:
    pattern = JOB_LINE % (re.escape(message_id), re.escape(event_type),
                          re.escape(aggregate))
    service.wait_log(pattern)
    found = re.findall(pattern, service.log())
    assert len(set(found)) == 1, found
    return str(found[0])


def test_glance_image_activate_starts_one_job_per_aggregate(
        cluster: Cluster) -> None:
    """Delivered twice, then followed by Glance's image.update: one job
    per aggregate the image names, by property and by tag."""
    topic = 'notifications-%s' % cluster.tag
    # NOTE: 1 MiB at 256 KiB/s: the jobs still run when the copies come.
    image = cluster.make_image('warm', blocks=16, data_share=1.0)
    gpu = cluster.add_aggregate('gpu', ['cmp1', 'cmp2'])
    ssd = cluster.add_aggregate('ssd', ['cmp3'])
    listener = consumer(cluster, topic).start()
    slow = {'download_rate_limit': 256}
    agents = cluster.start({'cmp1': slow, 'cmp2': slow, 'cmp3': slow})
    listener.wait_ready()

    activate = sample('glance-image.activate')
    payload = activate['payload']
    payload['id'] = image.id
    payload['properties']['precache_aggregates'] = gpu
    payload['tags'] = ['precache:%s' % ssd, 'not-ours']
    url = cluster.transport_url
    message_id = publish(url, 'glance', topic, activate)
    gpu_job = _job_of(listener, message_id, 'image.activate', gpu)
    ssd_job = _job_of(listener, message_id, 'image.activate', ssd)

    # The same message again (a redelivery), then Glance's image.update.
    publish(url, 'glance', topic, activate)
    update = sample('glance-image.update')
    update['payload'].update(id=image.id, tags=payload['tags'],
                             properties=dict(payload['properties']))
    update_id = publish(url, 'glance', topic, update)
    assert _job_of(listener, update_id, 'image.update', gpu) == gpu_job
    assert _job_of(listener, update_id, 'image.update', ssd) == ssd_job
    listener.wait_log(r'Notification %s \(image.activate from '
                      r'image.localhost\) was handled already; ignored'
                      % message_id)
    assert cluster.conductor is not None
    assert cluster.conductor.count(r'already covers 1 image\(s\)') == 2

    for aggregate, job_id, shorts in ((gpu, gpu_job, ['cmp1', 'cmp2']),
                                      (ssd, ssd_job, ['cmp3'])):
        assert [j.id for j in _jobs(cluster, aggregate)] == [job_id]
        job = cluster.wait_job(job_id)
        assert job.state is objects.JobState.DONE
        assert job.image_ids == [image.id]
        assert job.options == {'dedupe': True,
                               'source': 'consumer:image.activate'}
        assert job.counts['cached'] == len(shorts)
        for short in shorts:
            assert agents[short].files() == [
                agents[short].cache_path(image.id).rsplit('/', 1)[1]]


def test_nova_add_host_caches_the_desired_images_on_that_host(
        cluster: Cluster) -> None:
    """Nova's versioned sample (delivered twice), then the legacy form."""
    topic = 'notifications-%s' % cluster.tag
    image = cluster.make_image('desired', blocks=6)
    aggregate = cluster.add_aggregate('warm', ['cmp1'])
    spec = cluster.aggregates[-1]
    spec['metadata'] = {'precache:images': image.id,
                        'availability_zone': 'nova'}
    cluster._write_inventory()
    listener = consumer(cluster, topic).start()
    agents = cluster.start(['cmp1', 'cmp2', 'cmp3'])
    listener.wait_ready()
    first = cluster.wait_job(cluster.submit(aggregate, [image]).id)
    assert first.counts['cached'] == 1

    # Nova adds cmp2 to the aggregate, then says so.
    spec['hosts'].append(cluster.host('cmp2'))
    cluster._write_inventory()
    added = sample('nova-aggregate.add_host.end')
    added['payload']['nova_object.data'].update(
        id=spec['id'], uuid=spec['uuid'], name=aggregate,
        hosts=list(spec['hosts']), metadata=dict(spec['metadata']))
    url = cluster.transport_url
    message_id = publish(url, 'nova', topic, added)
    job_id = _job_of(listener, message_id, 'aggregate.add_host.end',
                     str(spec['id']))
    publish(url, 'nova', topic, added)
    listener.wait_log(r'Notification %s \(aggregate.add_host.end from '
                      r'nova-api:fake-mini\) was handled already'
                      % message_id)
    job = cluster.wait_job(job_id)
    assert job.state is objects.JobState.DONE
    assert job.image_ids == [image.id]
    assert [r.host for r in job.results or []] == [cluster.host('cmp2')]
    assert job.options['source'] == 'consumer:aggregate.add_host.end'
    assert job.counts['cached'] == 1
    assert agents['cmp2'].files() == [
        agents['cmp2'].cache_path(image.id).rsplit('/', 1)[1]]

    # Nova's legacy form (its default format) names the host it added.
    spec['hosts'].append(cluster.host('cmp3'))
    cluster._write_inventory()
    legacy = sample('nova-aggregate.addhost.end')
    legacy['payload'].update(aggregate_id=spec['id'], name=aggregate,
                             host_name=cluster.host('cmp3'))
    legacy['publisher_id'] = 'aggregate.%s' % spec['id']
    legacy_id = publish(url, 'nova', topic, legacy)
    job = cluster.wait_job(_job_of(listener, legacy_id,
                                   'aggregate.addhost.end', str(spec['id'])))
    assert [r.host for r in job.results or []] == [cluster.host('cmp3')]
    assert job.options['hosts'] == [cluster.host('cmp3')]
    assert job.counts['cached'] == 1
    assert len(_jobs(cluster, aggregate)) == 3

    # A metadata update with nothing missing: a reconcile, no job.
    metadata = sample('nova-aggregate.update_metadata.end')
    metadata['payload']['nova_object.data'].update(
        id=spec['id'], name=aggregate, metadata=dict(spec['metadata']))
    metadata_id = publish(url, 'nova', topic, metadata)
    listener.wait_log(r'Notification %s \(aggregate.update_metadata.end\): '
                      r'aggregate %s, every host: nothing missing, no job'
                      % (metadata_id, spec['id']))
    assert len(_jobs(cluster, aggregate)) == 3


def test_malformed_notifications_are_acknowledged(cluster: Cluster) -> None:
    """Garbage of every kind, then a good notification: still handled."""
    topic = 'notifications-%s' % cluster.tag
    image = cluster.make_image('after', blocks=4)
    aggregate = cluster.add_aggregate('edge', ['cmp1'])
    listener = consumer(cluster, topic).start()
    cluster.start(['cmp1'])
    listener.wait_ready()
    url = cluster.transport_url
    routing_key = '%s.info' % topic

    publish_raw(url, 'glance', routing_key, b'\x00\xffnot json')
    publish_raw(url, 'glance', routing_key, '{"oslo.version": "2.0", '
                                            '"oslo.message": "{broken"}')
    publish_raw(url, 'nova', routing_key, json.dumps(['not', 'a', 'dict']))
    bad_ids = []
    activate = sample('glance-image.activate')
    del activate['payload']['id']
    bad_ids.append(publish(url, 'glance', topic, activate))
    activate = sample('glance-image.activate')
    activate['payload'] = 'a string'
    bad_ids.append(publish(url, 'glance', topic, activate))
    added = sample('nova-aggregate.add_host.end')
    added['payload'] = {'nova_object.data': {'hosts': ['x']}}
    bad_ids.append(publish(url, 'nova', topic, added))
    legacy = sample('nova-aggregate.addhost.end')
    del legacy['payload']['host_name']
    bad_ids.append(publish(url, 'nova', topic, legacy))
    # Not ours: acknowledged without a word.
    other = sample('glance-image.activate')
    other['event_type'] = 'image.delete'
    publish(url, 'glance', topic, other)
    # An image the conductor does not know: refused, acknowledged.
    unknown = sample('glance-image.activate')
    unknown['payload']['properties']['precache_aggregates'] = aggregate
    unknown['payload']['tags'] = []
    unknown_id = publish(url, 'glance', topic, unknown)

    good = sample('glance-image.activate')
    good['payload'].update(id=image.id, tags=[],
                           properties={'precache_aggregates': aggregate})
    good_id = publish(url, 'glance', topic, good)
    job = cluster.wait_job(_job_of(listener, good_id, 'image.activate',
                                   aggregate))
    assert job.state is objects.JobState.DONE
    assert job.counts['cached'] == 1

    for bad_id in bad_ids:
        listener.wait_log(r'Notification %s from \S+ ignored: Notification '
                          r'\S+ cannot be used: ' % bad_id)
    listener.wait_log(r'Notification %s \(image.activate\): aggregate %s, '
                      r'image 513876a7-2f03-4190-b9f9-f4a138f0599b: '
                      r'refused: Image 513876a7-2f03-4190-b9f9-f4a138f0599b '
                      r'could not be found' % (unknown_id, aggregate))
    assert listener.running
    assert len(_jobs(cluster, aggregate)) == 1
    # The bodies that are no oslo.messaging message at all: oslo.messaging
    # logs each as an error and drops it; nothing else may be an error.
    cluster.log_errors_expected = True
    errors = [line for line in cluster.log_errors()
              if not line.startswith('consumer: ')]
    assert errors == []
    consumer_errors = [line for line in listener.log().splitlines()
                       if ' ERROR ' in line]
    assert all(' ERROR oslo.messaging._drivers.impl_rabbit ' in line
               for line in consumer_errors), consumer_errors
    assert len([line for line in consumer_errors if 'Failed to process '
                'message ... skipping it' in line]) == 3, consumer_errors


def test_no_conductor_hands_the_notification_back_until_one_answers(
        cluster: Cluster) -> None:
    topic = 'notifications-%s' % cluster.tag
    image = cluster.make_image('later', blocks=4)
    aggregate = cluster.add_aggregate('late', ['cmp1'])
    listener = consumer(cluster, topic, conductor_timeout=2,
                        requeue_delay=1).start()
    listener.wait_ready()
    activate = sample('glance-image.activate')
    activate['payload'].update(
        id=image.id, tags=[], properties={'precache_aggregates': aggregate})
    message_id = publish(cluster.transport_url, 'glance', topic, activate)
    listener.wait_log(r'Notification %s \(image.activate\): .*; handed back '
                      r'to the queue in 1s' % message_id, count=2)
    cluster.start(['cmp1'])
    job = cluster.wait_job(_job_of(listener, message_id, 'image.activate',
                                   aggregate))
    assert job.state is objects.JobState.DONE
    assert job.counts['cached'] == 1
    assert [j.id for j in _jobs(cluster, aggregate)] == [job.id]
