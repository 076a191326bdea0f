"""Generated files for the API are current: policy sample, config sample."""

from __future__ import annotations

import os
import subprocess
import sys

from precache.api import policy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ETC = os.path.join(ROOT, 'etc', 'precache')


def test_policy_sample_is_current(tmp_path):
    generated = tmp_path / 'policy.yaml.sample'
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable),
                      'oslopolicy-sample-generator'),
         '--config-file',
         os.path.join(ETC, 'precache-policy-generator.conf'),
         '--output-file', str(generated)], check=True, cwd=ROOT)
    with open(os.path.join(ETC, 'policy.yaml.sample')) as committed:
        assert generated.read_text() == committed.read(), (
            'etc/precache/policy.yaml.sample is stale: run '
            'oslopolicy-sample-generator --config-file '
            'etc/precache/precache-policy-generator.conf')
    text = generated.read_text()
    for rule in policy.list_rules():
        assert '"%s"' % rule.name in text


def test_policy_defaults_are_admin_only_as_in_nova():
    """Reads too: jobs name hosts and every project's images, and with
    Keystone's implied roles a reader rule admits every member."""
    rules = {rule.name: rule.check_str for rule in policy.list_rules()}
    for name in (policy.IMAGES_CREATE, policy.JOBS_CANCEL,
                 policy.AGGREGATES_INDEX, policy.AGGREGATES_SHOW,
                 policy.JOBS_LIST, policy.JOBS_SHOW, policy.IMAGES_LIST,
                 policy.IMAGES_LOOKUP, policy.IMAGES_LOOKUP_SHOW):
        assert rules[name] == 'rule:context_is_admin', name
    with open(os.path.join(ETC, 'policy.yaml.sample')) as sample:
        text = sample.read()
    assert '#"precache:jobs:list": "rule:context_is_admin"' in text
    assert 'every project member is a reader' in ' '.join(
        line.lstrip('# ') for line in text.splitlines())


def test_config_sample_documents_api_and_auth():
    with open(os.path.join(ETC, 'precache.conf.sample')) as sample:
        text = sample.read()
    for section in ('[api]', '[keystone_authtoken]', '[oslo_policy]',
                    '[oslo_middleware]'):
        assert section in text
    assert '#auth_strategy = keystone' in text
    assert '#max_request_body_size = 114688' in text
