"""precache-manage conductors list: the service rows in the job store."""

from __future__ import annotations

import argparse
import datetime
import json

import sqlalchemy as sa

from precache import objects
from precache.cmd import manage
from precache.db import models
from precache.db.leases import LeaseStore


def test_conductors_list(own_store, conf, capsys):
    conf.config(group='database', connection=own_store.url)
    conf.config(group='conductor', service_down_time=60)
    leases = LeaseStore(own_store.engine)
    for host in ('c-up', 'c-silent', 'c-stopped'):
        leases.report(host, 'up', '1.2.3', started=True)
    leases.report('c-stopped', 'stopped', '1.2.3')
    with own_store.engine.begin() as conn:
        conn.execute(sa.update(models.Conductor)
                     .where(models.Conductor.host == 'c-silent')
                     .values(last_seen=objects.utcnow()
                             - datetime.timedelta(seconds=90)))
    own_store.create_job('job-1', 'agg', [], [], {}, conductor='c-up')
    assert manage.conductors_list(argparse.Namespace(json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['HOST', 'STATE', 'VERSION', 'STARTED',
                                'SILENCE', 'JOBS']
    assert [line.split()[:3] + line.split()[-1:] for line in lines[1:]] == [
        ['c-silent', 'down', '1.2.3', '0'],
        ['c-stopped', 'stopped', '1.2.3', '0'],
        ['c-up', 'up', '1.2.3', '1']]
    assert manage.conductors_list(argparse.Namespace(json=True)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c['host'], c['state'], c['jobs']) for c in listed] == [
        ('c-silent', 'down', 0), ('c-stopped', 'stopped', 0),
        ('c-up', 'up', 1)]
