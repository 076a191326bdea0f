"""Desired state: which images an aggregate should hold, and the job that
brings its hosts there.

An aggregate's desired images are the ids in its metadata key
(``[desired_state] aggregate_metadata_key``, ``precache:images``: a comma
list; Nova's ``os-aggregates`` and the static inventory both carry
metadata) plus the active images that name the aggregate, by the one rule
precache-consumer applies too (:func:`precache.objects.aggregates_named`):
in their property ``precache_aggregates`` (a comma list) or by a tag
``precache:<aggregate>``. Reconciling compares
them with the latest result of every (host, image) and starts one job —
deduplicated against a pending or running job that already covers it —
for the hosts and images that are missing, failed last time, or whose last
success is older than ``[conductor] refresh_age`` (running them again
touches the cache file, which resets Nova's image cache expiry).
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from precache import exception, objects
from precache.clients.images import ImageService, normalize_ids
from precache.conductor.inventory import Aggregate
from precache.conf import CONF

if TYPE_CHECKING:
    from precache.conductor.jobs import JobRunner

LOG = logging.getLogger(__name__)

def desired_images(aggregate: Aggregate,
                   image_service: ImageService) -> list[str]:
    """Ids of the images ``aggregate`` should hold, usable ones only.

    An id in the metadata that is malformed, missing or not active is
    logged and left out: one stale entry must not block the others.
    """
    key = CONF.desired_state.aggregate_metadata_key
    wanted: list[str] = []
    for raw in (aggregate.metadata.get(key) or '').split(','):
        raw = raw.strip()
        if not raw:
            continue
        try:
            image_id = normalize_ids([raw])[0]
            image_service.validate([image_id])
        except (exception.Invalid, exception.NotFound) as exc:
            LOG.warning('Aggregate %(agg)s: %(key)s entry %(id)r left out: '
                        '%(why)s', {'agg': aggregate.name,
                                    'key': key, 'id': raw,
                                    'why': exc})
            continue
        if image_id not in wanted:
            wanted.append(image_id)
    for image in _naming(aggregate.name, image_service):
        if image['id'] not in wanted:
            wanted.append(image['id'])
    return wanted


def _naming(name: str, image_service: ImageService
            ) -> list[dict[str, Any]]:
    """Active images that name aggregate ``name``.

    Glance filters a tag, but a property only by its whole value; a comma
    list needs the documents, so every active image is read once (a
    paginated list, run by reconcile and schedules, not per host).
    """
    prop = CONF.desired_state.image_property
    prefix = CONF.desired_state.image_tag_prefix
    found: dict[str, dict[str, Any]] = {}
    if prefix:
        found.update((image['id'], image)
                     for image in image_service.find(tag=prefix + name))
    for image in image_service.find():
        if name in objects.aggregates_named(image, (), prop, ''):
            found.setdefault(image['id'], image)
    return list(found.values())


def stale_pairs(hosts: list[str], image_ids: list[str],
                latest: dict[tuple[str, str], objects.HostImageResult],
                now: datetime.datetime,
                refresh_age: int) -> set[tuple[str, str]]:
    """(host, image) pairs not resident, or resident for too long."""
    too_old = now - datetime.timedelta(seconds=refresh_age)
    stale = set()
    for host in hosts:
        for image_id in image_ids:
            result = latest.get((host, image_id))
            if result is None or (refresh_age and (
                    result.finished_at is None
                    or result.finished_at < too_old)):
                stale.add((host, image_id))
    return stale


def reconcile(runner: JobRunner, aggregate_ref: str,
              hosts: list[str] | None = None, source: str = 'reconcile',
              request_id: str | None = None) -> objects.Job | None:
    """Start the job that brings ``aggregate_ref`` to its desired images,
    or return None when every host is up to date.

    The job covers every host that lacks something times every image
    some host lacks (the pairs already there end ``existing``: cheap).

    :raises: AggregateNotFound, InvalidOption (a host not in it).
    """
    aggregate = runner.inventory.get_aggregate(str(aggregate_ref))
    targets = list(aggregate.hosts)
    if hosts:
        outside = sorted(set(hosts) - set(targets))
        if outside:
            raise exception.InvalidOption(
                option='hosts', reason='not in aggregate %s: %s'
                % (aggregate.name, ', '.join(outside)))
        targets = [h for h in targets if h in set(hosts)]
    wanted = desired_images(aggregate, runner.image_service)
    latest = {(r.host, r.image_id): r
              for _, r in runner.store.resident_images(targets)}
    stale = stale_pairs(targets, wanted, latest, runner.clock(),
                        CONF.conductor.refresh_age)
    if not stale:
        LOG.info('Reconcile %(agg)s: %(images)d desired image(s) on '
                 '%(hosts)d host(s) up to date; no job',
                 {'agg': aggregate.name,
                  'images': len(wanted), 'hosts': len(targets)})
        return None
    stale_hosts = [h for h in targets if any(p[0] == h for p in stale)]
    stale_images = [i for i in wanted if any(p[1] == i for p in stale)]
    LOG.info('Reconcile %(agg)s: %(pairs)d (host, image) pair(s) missing '
             'or older than %(age)ds: %(images)d image(s) on %(hosts)d '
             'host(s)',
             {'agg': aggregate.name, 'pairs': len(stale),
              'age': CONF.conductor.refresh_age,
              'images': len(stale_images), 'hosts': len(stale_hosts)})
    return runner.create(aggregate.id, stale_images,
                         {'hosts': stale_hosts, 'dedupe': True,
                          'source': source}, request_id=request_id)
