"""More conductors for a test's cluster: same settings, same job store."""

from __future__ import annotations

import os
import re

from tests.functional.harness import Cluster, Service


def add_conductor(cluster: Cluster, short: str) -> Service:
    """Configure (not start) another conductor like the cluster's first
    (schedules, inventory, job store and all) under host name ``short``."""
    base = cluster.conductor
    assert base is not None, 'make_conductor() first'
    sections = {section: dict(options)
                for section, options in base.sections.items()}
    host = cluster.host(short)
    sections['DEFAULT'].update(host=host, state_path=os.path.join(
        cluster.root, 'state-%s' % short))
    sections['DEFAULT'].pop('log_file', None)
    service = Service(short, 'precache-conductor',
                      os.path.join(cluster.root, short), sections,
                      ready=r'Conductor %s started' % re.escape(host))
    cluster.services.append(service)
    return service
