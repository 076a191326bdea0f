"""precache.context: the ids a request carries, and whose they are."""

from __future__ import annotations

import datetime
import logging
import threading
from concurrent import futures

from oslo_context import context as oslo_context
from oslo_log import formatters

from precache import context, service
from precache.conf import CONF


def test_round_trip_through_dict_and_wire():
    when = datetime.datetime(2026, 12, 4, 17, 0, tzinfo=datetime.UTC)
    ctxt = context.RequestContext(
        request_id='req-1', global_request_id='req-0', user_id='u',
        project_id='p', job_id='job-1', abandoned_after=when,
        overwrite=False)
    for values in (ctxt.to_dict(), ctxt.to_wire()):
        back = context.RequestContext.from_dict(values, overwrite=False)
        assert (back.request_id, back.global_request_id, back.user_id,
                back.project_id, back.job_id, back.abandoned_after) == \
            ('req-1', 'req-0', 'u', 'p', 'job-1', when)
    assert ctxt.to_wire()['abandoned_after'] == when.isoformat()


def test_abandoned_after_tolerates_what_older_callers_send():
    naive = context.RequestContext(abandoned_after='2026-12-04T17:00:00',
                                   overwrite=False)
    assert naive.abandoned_after is not None
    assert naive.abandoned_after.tzinfo is datetime.UTC
    for value in (None, '', 'not a time'):
        ctxt = context.RequestContext(abandoned_after=value,
                                      overwrite=False)
        assert ctxt.abandoned_after is None
        assert ctxt.seconds_late() == 0.0


def test_seconds_late():
    ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        seconds=30)
    late = context.RequestContext(abandoned_after=ago, overwrite=False)
    assert 29 < late.seconds_late() < 60


def test_waited_until_keeps_the_ids():
    ctxt = context.for_job('job-1', 'req-api')
    when = datetime.datetime(2026, 12, 4, tzinfo=datetime.UTC)
    later = ctxt.waited_until(when)
    assert (later.request_id, later.global_request_id, later.job_id,
            later.abandoned_after) == ('job-1', 'req-api', 'job-1', when)
    assert ctxt.abandoned_after is None
    assert context.get_current() is later


def test_a_job_logs_under_its_id_and_the_request_that_asked():
    ctxt = context.for_job('job-1', 'req-api')
    assert (ctxt.request_id, ctxt.global_request_id, ctxt.job_id) == \
        ('job-1', 'req-api', 'job-1')
    assert context.get_current() is ctxt


def test_internal_context():
    ctxt = context.get_internal_context('schedule-nightly')
    assert ctxt.request_id.startswith('req-')
    assert ctxt.global_request_id == 'schedule-nightly'
    assert ctxt.is_admin
    assert context.get_current() is ctxt
    quiet = context.get_internal_context(overwrite=False)
    assert context.get_current() is ctxt
    assert quiet.global_request_id is None


def test_get_current_is_only_ours():
    oslo_context.RequestContext(request_id='req-oslo')
    assert context.get_current() is None


def test_carried_runs_under_the_callers_context():
    ctxt = context.for_job('job-2', 'req-api')

    def ids() -> tuple[str | None, str | None]:
        current = context.get_current()
        assert current is not None
        return current.request_id, current.global_request_id

    with futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(context.carried(lambda _: ids()), range(3))) \
            == [(ctxt.request_id, 'req-api')] * 3
    seen = []
    thread = threading.Thread(target=lambda: seen.append(
        context.get_current()))
    thread.start()
    thread.join()
    assert seen == [None]  # NOTE: a thread has none until given one


def test_log_line_shows_both_ids(conf):
    service.register_library_opts()
    conf.config(logging_context_format_string=(
        '[%(global_request_id)s %(request_id)s] %(message)s'))
    formatter = formatters.ContextFormatter(config=CONF)
    record = logging.LogRecord('precache', logging.INFO, __file__, 1,
                               'hello', None, None)
    context.for_job('job-3', 'req-api')
    assert formatter.format(record) == '[req-api job-3] hello'
    context.RequestContext(request_id='req-b')
    record = logging.LogRecord('precache', logging.INFO, __file__, 1,
                               'hello', None, None)
    assert formatter.format(record) == '[- req-b] hello'
