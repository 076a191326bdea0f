"""precache-manage conductors list: the service rows in the job store."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

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


def _manage(tmp_path, url: str, *command: str):
    conf = tmp_path / 'precache.conf'
    conf.write_text('[database]\nconnection = %s\n' % url)
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'precache-manage'),
         '--config-file', str(conf), *command],
        capture_output=True, text=True, timeout=60)


def test_a_wrong_password_is_one_line_naming_the_option(tmp_path,
                                                        mariadb_url):
    """As an operator's typo: the real command, a wrong password."""
    url = sa.engine.make_url(mariadb_url).set(password='wrong')
    for command in (('db', 'sync'), ('conductors', 'list')):
        done = _manage(tmp_path, url.render_as_string(hide_password=False),
                       *command)
        assert done.returncode == 1, done
        assert done.stderr.count('\n') == 1, done.stderr
        assert done.stderr.startswith('ERROR: job store error: ')
        assert 'Access denied' in done.stderr
        assert 'check [database] connection' in done.stderr
        assert ':***@' in done.stderr and 'wrong' not in done.stderr


def test_a_store_not_migrated_says_what_to_run(tmp_path):
    done = _manage(tmp_path, 'sqlite:///%s' % (tmp_path / 'new.sqlite'),
                   'conductors', 'list')
    assert done.returncode == 3, done
    assert done.stderr.count('\n') == 1, done.stderr
    assert 'run "precache-manage db sync"' in done.stderr
