"""One request id, from the API's caller to the agents' log lines.

The conductor and agents of the world run in this process over RabbitMQ;
a handler formats every line as it is logged, in the logging thread, with
oslo.log's context format (``[<global id> <request id> ...]``), as the
services' log files have them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from oslo_log import formatters
from oslo_utils import uuidutils

from precache import service
from precache.conf import CONF
from tests.api.conftest import cache_body


class Lines(logging.Handler):
    """Formatted lines of precache's loggers, per logger name."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatters.ContextFormatter(config=CONF))
        self.lines: list[tuple[str, str]] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self.guard:
            self.lines.append((record.name, line))

    def of(self, prefix: str, *words: str) -> list[str]:
        with self.guard:
            return [line for name, line in self.lines
                    if name.startswith(prefix)
                    and all(word in line for word in words)]


@pytest.fixture
def lines() -> Iterator[Lines]:
    service.register_library_opts()
    handler = Lines()
    logger = logging.getLogger('precache')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _cache_and_wait(noauth, world, headers):
    image_id = world.add_image()
    resp = noauth.post('/os-aggregates/12/images', json=cache_body(image_id),
                       headers=headers)
    assert resp.status_code == 202, resp.text
    job = world.wait(resp.json()['job']['id'])
    assert job.counts['cached'] == 1
    return resp, job, image_id


def _eventually(found) -> list[str]:
    """The agent's reply may arrive before its last line is handled."""
    deadline = time.monotonic() + 5
    while not found() and time.monotonic() < deadline:
        time.sleep(0.05)
    return found()


def test_client_request_id_is_in_conductor_and_agent_lines(noauth, world,
                                                           lines):
    client_id = 'req-' + uuidutils.generate_uuid()
    resp, job, image_id = _cache_and_wait(
        noauth, world, {'X-OpenStack-Request-ID': client_id})
    api_id = resp.headers['x-openstack-request-id']
    assert api_id != client_id
    # The conductor's RPC handler: both of the API's ids.
    assert lines.of('precache.conductor', '[%s %s ' % (client_id, api_id),
                    'Job %s accepted' % job.id)
    # The job's own thread and the agent: the job's id, the client's.
    assert _eventually(lambda: lines.of(
        'precache.conductor', '[%s %s ' % (client_id, job.id),
        'Job %s: 1 cached' % job.id))
    assert lines.of('precache.agent.manager', '[%s %s ' % (client_id, job.id),
                    'RPC cache_images called for 1 image')
    assert lines.of('precache.agent.cache', '[%s %s ' % (client_id, job.id),
                    'Image %s on api-h2: cached' % image_id)


def test_api_request_id_is_followed_without_a_client_one(noauth, world,
                                                         lines):
    resp, job, image_id = _cache_and_wait(noauth, world, {})
    api_id = resp.headers['x-openstack-request-id']
    assert lines.of('precache.conductor', '[- %s ' % api_id,
                    'Job %s accepted' % job.id)
    assert lines.of('precache.agent.cache', '[%s %s ' % (api_id, job.id),
                    'Image %s on api-h2: cached' % image_id)
