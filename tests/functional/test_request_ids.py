"""One request, followed from the API's call to the agents' log lines.

The conductor and the agents are processes with log files in oslo.log's
context format (``[<global id> <request id> <user> ...]``); the test
process calls the conductor as precache-api does: its own request id,
and a client's X-OpenStack-Request-ID as the global one.
"""

from __future__ import annotations

import re

from oslo_utils import uuidutils

from precache import context, objects
from tests.functional.harness import Cluster


def _lines(text: str, ids: str, message: str) -> list[str]:
    """Lines whose context bracket starts with ``ids``, saying
    ``message`` (regular expressions)."""
    return re.findall(r'^.*\[%s[^\]]*\] %s.*$' % (ids, message), text,
                      re.MULTILINE)


def test_request_ids_reach_the_conductor_and_the_agents(
        cluster: Cluster) -> None:
    image = cluster.make_image('traced', blocks=4)
    shorts = ['trc1', 'trc2']
    aggregate = cluster.add_aggregate('traced', shorts)
    agents = cluster.start(shorts)
    conductor = cluster.conductor
    assert conductor is not None

    # A client's X-OpenStack-Request-ID: the global id of every line.
    client_id = 'req-' + uuidutils.generate_uuid()
    api_id = 'req-' + uuidutils.generate_uuid()
    ctxt = context.RequestContext(
        request_id=api_id, global_request_id=client_id, user_id='u1',
        project_id='p1', overwrite=False)
    job = cluster.wait_job(cluster.api.cache_images(
        ctxt, aggregate, [image.id]).id)
    assert job.state is objects.JobState.DONE
    assert job.counts['cached'] == 2

    log = conductor.log()
    # The call itself: both of the API's ids and the caller.
    assert _lines(log, '%s %s u1 p1' % (client_id, api_id),
                  'RPC cache_images called for aggregate %s' % aggregate)
    assert _lines(log, '%s %s u1 p1' % (client_id, api_id),
                  'Job %s accepted' % job.id)
    # The job's thread: the job's id, under the client's.
    assert _lines(log, '%s %s' % (client_id, job.id),
                  'Job %s: 2 cached, 0 existing' % job.id)
    for agent in agents.values():
        text = agent.log()
        assert _lines(text, '%s %s' % (client_id, job.id),
                      'RPC cache_images called for 1 image')
        # NOTE: logged by the cache's worker threads.
        assert _lines(text, '%s %s' % (client_id, job.id),
                      'Image %s on %s: cached' % (image.id, agent.host))
        assert api_id not in text

    # Without the header the API's own request id is the one followed.
    api_id = 'req-' + uuidutils.generate_uuid()
    ctxt = context.RequestContext(request_id=api_id, overwrite=False)
    again = cluster.wait_job(cluster.api.cache_images(
        ctxt, aggregate, [image.id]).id)
    assert again.counts['existing'] == 2
    assert _lines(conductor.log(), r'- %s' % api_id,
                  'Job %s accepted' % again.id)
    assert _lines(conductor.log(), '%s %s' % (api_id, again.id),
                  'Job %s: 0 cached, 2 existing' % again.id)
    for agent in agents.values():
        assert _lines(agent.log(), '%s %s' % (api_id, again.id),
                      'Image %s on %s: existing' % (image.id, agent.host))
