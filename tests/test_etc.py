"""The files in etc/ are current and valid."""

import os
import subprocess
import sys

import pytest
import yaml

from precache.conductor import inventory
from precache.confcheck import validate
from tests.unit.confcheck.test_validate import load_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETC = os.path.join(ROOT, 'etc', 'precache')


def test_sample_config_is_current(tmp_path):
    generated = tmp_path / 'precache.conf.sample'
    subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--config-file',
         os.path.join(ETC, 'precache-config-generator.conf'),
         '--output-file', str(generated)],
        check=True, cwd=ROOT)
    with open(os.path.join(ETC, 'precache.conf.sample')) as committed:
        assert generated.read_text() == committed.read(), (
            'etc/precache/precache.conf.sample is stale: run '
            'oslo-config-generator --config-file '
            'etc/precache/precache-config-generator.conf')


def test_sample_config_documents_every_precache_option():
    from precache.conf import opts

    with open(os.path.join(ETC, 'precache.conf.sample')) as sample:
        text = sample.read()
    for group, options in opts.list_opts():
        assert '[%s]' % group in text
        for option in options:
            assert '#%s = ' % option.dest in text, (group, option.dest)


def test_inventory_example_parses():
    path = os.path.join(ETC, 'inventory.yaml.example')
    with open(path) as stream:
        cells, aggregates = inventory.parse_static(path,
                                                   yaml.safe_load(stream))
    assert cells['edge-par-01'] == 'edge-paris'
    assert [a.name for a in aggregates] == ['rollout-a', 'edge-paris']
    assert aggregates[1].metadata == {
        'precache:images': '9f3a6b52-0a0c-4d7e-8d53-2f3f0e6b4a11'}


EXAMPLES = os.path.join(ETC, 'examples')


@pytest.mark.parametrize('name, substitutes', [
    ('conductor', {}),
    # The same conductor without Glance or Nova: the example catalog and
    # inventory.
    ('conductor', {
        'image_service': {'driver': 'local', 'local_catalog': os.path.join(
            EXAMPLES, 'catalog.json')},
        'inventory': {'driver': 'static', 'static_file': os.path.join(
            ETC, 'inventory.yaml.example')}}),
    ('agent', {'agent': {'instances_path': '{tmp}/instances'},
               'ceph': {'conf_file': '{tmp}/ceph.conf',
                        'keyring': '{tmp}/keyring'}}),
    ('api', {}),
    ('consumer', {}),
])
def test_examples_pass_the_start_up_check(tmp_path, name, substitutes):
    """Every value valid, every option known; the files an example names
    on a real host are replaced by files made here."""
    for each in ('ceph.conf', 'keyring'):
        (tmp_path / each).write_text('')
    lines = []
    for group, options in substitutes.items():
        lines.append('[%s]' % group)
        lines += ['%s = %s' % (option, value.format(tmp=tmp_path))
                  for option, value in options.items()]
    here = tmp_path / 'substitutes.conf'
    here.write_text('\n'.join(lines) + '\n')
    conf = load_files([os.path.join(EXAMPLES, '%s.conf' % name),
                       str(here)])
    assert validate.check(conf, 'precache-%s' % name) == []
