"""The files in etc/ are current and valid."""

import os
import subprocess
import sys

import yaml

from precache.conductor import inventory

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
