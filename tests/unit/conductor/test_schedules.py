"""Built-in schedules and the periodic reconcile, in a test clock, with a
runner over the in-process bus and real agents."""

from __future__ import annotations

import datetime

import pytest

from precache import exception, objects
from precache.agent.rpcapi import AgentAPI
from precache.clients.images import LocalImageService
from precache.conductor import jobs, schedules
from precache.conductor.inventory import StaticInventory
from precache.conf import CONF
from precache.conf import schedules as schedules_conf
from precache.db import migration
from precache.db.api import JobStore
from precache.db.schedules import ScheduleStore
from tests.unit.clock import Clock

JobState = objects.JobState


def local(*args: int) -> datetime.datetime:
    """A local wall-clock time, as cron expressions mean it."""
    return datetime.datetime(*args).astimezone()


@pytest.fixture
def world(cloud, tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'schedules.sqlite')
    migration.upgrade(url)
    store = JobStore(url)
    clock = Clock(local(2026, 5, 1, 1, 59))
    runners = []

    def runner(host='u-sched'):
        made = jobs.JobRunner(store, StaticInventory(cloud.inventory),
                              LocalImageService(cloud.catalog),
                              lambda cell: AgentAPI(cloud.transport), host,
                              clock=clock)
        runners.append(made)
        return made

    def scheduler(items, host='u-sched'):
        return schedules.Scheduler(runner(host), ScheduleStore(store.engine),
                                   items)

    yield store, clock, scheduler
    for each in runners:
        each.stop()
    store.close()


def test_latest_occurrence():
    nightly = schedules.Schedule('n', '0 2 * * *', ('a',))
    assert nightly.latest(local(2026, 5, 1, 1, 59)) == \
        local(2026, 4, 30, 2, 0)
    assert nightly.latest(local(2026, 5, 1, 2, 0)) == local(2026, 5, 1, 2, 0)
    assert nightly.latest(local(2026, 5, 1, 13, 0)) == \
        local(2026, 5, 1, 2, 0)


def test_load_checks_each_schedule(conf, cloud):
    image_id = cloud.add_image()
    conf.config(group='schedules', names=['nightly', 'tagged'])
    for name in ('nightly', 'tagged'):
        schedules_conf.register_schedule(CONF, name)
    conf.config(group='schedule:nightly', cron='0 2 * * *',
                aggregates=['one', 'all'], images=[image_id], window='2h',
                max_concurrent_hosts=2)
    conf.config(group='schedule:tagged', cron='*/5 * * * *',
                aggregates=['all'], image_tag='gold',
                image_properties={'os_distro': 'ubuntu'})
    nightly, tagged = schedules.load()
    assert nightly == schedules.Schedule(
        'nightly', '0 2 * * *', ('one', 'all'), (image_id,), window=7200,
        max_concurrent_hosts=2)
    assert tagged.image_tag == 'gold' and tagged.window is None
    assert tagged.image_properties == (('os_distro', 'ubuntu'),)

    for group, values, option, reason in [
            ('nightly', {'cron': None}, 'cron',
             'required: a cron expression: minute hour day-of-month month '
             'day-of-week, e.g. "0 2 * * *"'),
            ('nightly', {'cron': 'at two'}, 'cron',
             "'at two' is not a cron expression"),
            ('nightly', {'window': 'long'}, 'window', 'not a duration'),
            ('tagged', {'aggregates': []}, 'aggregates', 'required'),
            ('tagged', {'image_tag': None, 'image_properties': {}},
             'images', 'give images, image_tag or image_properties')]:
        name = 'schedule:%s' % group
        before = {key: getattr(getattr(CONF, name), key) for key in values}
        conf.config(group=name, **values)
        with pytest.raises(exception.ConfigInvalid) as info:
            schedules.load()
        # Where the value comes from, then why it is wrong (no "Invalid
        # request": no request is involved).
        assert info.value.message.startswith('[%s] %s (' % (name, option))
        assert '): %s' % reason in info.value.message
        conf.config(group=name, **before)


def test_schedule_fires_once_per_occurrence(world, cloud):
    store, clock, scheduler = world
    image_id = cloud.add_image()
    nightly = schedules.Schedule('nightly', '0 2 * * *', ('one',),
                                 (image_id,), window=3600)
    first, second = scheduler([nightly]), scheduler([nightly], 'u-other')

    # 01:59: yesterday's run is long over, nothing to catch up.
    assert first.tick() == []
    clock.now = local(2026, 5, 1, 2, 0, 10)
    [job_id] = first.tick()
    # The same occurrence, again or from another conductor: no new job.
    assert first.tick() == [] and second.tick() == []
    job = cloud.wait(job_id, store=store)
    assert job.state is JobState.DONE and job.counts['cached'] == 1
    assert job.options['source'] == 'schedule:nightly'
    assert datetime.datetime.fromisoformat(job.options['deadline']) == \
        local(2026, 5, 1, 3, 0)
    record = ScheduleStore(store.engine).get('nightly/one')
    assert record.job_id == job_id
    assert record.occurrence == local(2026, 5, 1, 2, 0)

    # Next night, the other conductor is first.
    clock.now = local(2026, 5, 2, 2, 1)
    [next_id] = second.tick()
    assert first.tick() == []
    assert cloud.wait(next_id, store=store).counts['existing'] == 1


def test_missed_run_is_made_once_at_start_inside_its_window(world, cloud):
    store, clock, scheduler = world
    nightly = schedules.Schedule('nightly', '0 2 * * *', ('one',),
                                 (cloud.add_image(),), window=3600)
    clock.now = local(2026, 5, 1, 2, 0, 5)
    [job_id] = scheduler([nightly]).tick()
    cloud.wait(job_id, store=store)

    # Every conductor was down at 02:00 the next night; one starts 02:30.
    clock.now = local(2026, 5, 2, 2, 30)
    restarted = scheduler([nightly], 'u-restarted')
    [caught_up] = restarted.tick()
    assert restarted.tick() == []
    job = cloud.wait(caught_up, store=store)
    assert datetime.datetime.fromisoformat(job.options['deadline']) == \
        local(2026, 5, 2, 3, 0)

    # Down again over the next night until after its window closed.
    clock.now = local(2026, 5, 3, 3, 30)
    assert scheduler([nightly], 'u-late').tick() == []


def test_new_schedule_without_window_waits_for_its_next_run(world, cloud):
    store, clock, scheduler = world
    hourly = schedules.Schedule('hourly', '0 * * * *', ('one',),
                                (cloud.add_image(),))
    runner = scheduler([hourly])
    assert runner.tick() == []
    note = ScheduleStore(store.engine).get('hourly/one').note
    assert note == 'schedule added; waits for its next run'
    clock.now = local(2026, 5, 1, 2, 0, 1)
    [job_id] = runner.tick()
    assert 'deadline' not in cloud.wait(job_id, store=store).options


def test_previous_run_still_running_delays_the_next(world, cloud, conf):
    store, clock, scheduler = world
    # NOTE: u-ghost has no agent: its ping keeps each job running ~2 s.
    conf.config(group='conductor', agent_ping_timeout=2)
    often = schedules.Schedule('often', '* * * * *', ('partial',),
                               (cloud.add_image(),), window=600)
    runner = scheduler([often])
    clock.now = local(2026, 5, 1, 2, 0, 1)
    [first] = runner.tick()
    clock.now = local(2026, 5, 1, 2, 1, 1)
    assert runner.tick() == []
    assert not store.get_job(first, with_results=False).state.is_final
    cloud.wait(first, store=store)
    [second] = runner.tick()
    assert second != first
    cloud.wait(second, store=store)


def test_image_selector_is_resolved_at_run_time(world, cloud):
    store, clock, scheduler = world
    listed = cloud.add_image()
    runner = scheduler([schedules.Schedule(
        'gold', '0 2 * * *', ('one',), (listed,), image_tag='gold-x',
        image_properties=(('tier', 'gold'),), window=3600)])
    assert runner.tick() == []
    tagged = cloud.add_image(tags=['gold-x'], tier='gold')
    cloud.add_image(tags=['gold-x'], tier='silver')
    clock.now = local(2026, 5, 1, 2, 0, 1)
    [job_id] = runner.tick()
    assert cloud.wait(job_id, store=store).image_ids == [listed, tagged]


def test_schedule_without_images_records_why(world, cloud):
    store, clock, scheduler = world
    runner = scheduler([schedules.Schedule(
        'empty', '0 2 * * *', ('one',), image_tag='no-such-tag',
        window=3600)])
    clock.now = local(2026, 5, 1, 2, 0, 1)
    assert runner.tick() == []
    assert ScheduleStore(store.engine).get('empty/one').note == \
        'Invalid request: no image matches'


def test_periodic_reconcile(world, cloud, conf):
    store, clock, scheduler = world
    conf.config(group='conductor', reconcile_interval=600,
                reconcile_aggregates=['one'])
    image_id = cloud.add_image(precache_aggregates='one')
    runner = scheduler([])
    [job_id] = runner.tick()
    job = cloud.wait(job_id, store=store)
    assert image_id in job.image_ids
    assert job.options['source'] == 'reconcile'
    assert runner.tick() == []  # the same interval
    clock.now += datetime.timedelta(minutes=10)
    assert runner.tick() == []  # nothing missing
    assert ScheduleStore(store.engine).get('reconcile/one').note == \
        'nothing missing'
