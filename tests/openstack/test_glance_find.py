"""ImageService.find against real Glance: tag and property selectors,
across pages, active images only."""

from __future__ import annotations

import uuid

import pytest

from precache.clients import glance as glance_client

pytestmark = pytest.mark.usefixtures('glance_conf')


def test_find_by_tag_and_property_over_several_pages(images, proxy):
    tag = 'precache-%s' % uuid.uuid4().hex[:8]
    aggregate = 'agg-%s' % uuid.uuid4().hex[:8]
    tagged = [images.create(b'tagged %d' % i, tags=[tag]) for i in range(5)]
    both = images.create(b'both', tags=[tag], precache_aggregates=aggregate)
    images.create(b'property only', precache_aggregates=aggregate)
    images.create(b'other value', tags=[tag],
                  precache_aggregates=aggregate + '-x')
    images.create(None, name='queued', tags=[tag])  # never active
    client = glance_client.GlanceClient()
    proxy.requests.clear()

    found = client.find_images(tag=tag, page_size=2)
    # NOTE: the queued image is filtered out by Glance (status=active).
    assert len(found) == 7
    pages = [line for line, _ in proxy.requests if '/v2/images' in line]
    assert len(pages) == 4, pages
    assert all('tag=' + tag in line for line in pages), pages

    service = glance_client.GlanceImageService()
    ids = {i['id'] for i in service.find(tag=tag)}
    assert {i['id'] for i in tagged} | {both['id']} <= ids
    assert [i['id'] for i in service.find(
        tag=tag, properties={'precache_aggregates': aggregate})] == [
        both['id']]
    assert len(service.find(
        properties={'precache_aggregates': aggregate})) == 2
    assert service.find(tag='no-such-tag-%s' % tag) == []
