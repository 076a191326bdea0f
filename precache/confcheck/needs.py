"""What each service needs besides valid values: sections its auth
strategy and drivers use, files it reads, folders it writes.

Each check raises :class:`~precache.exception.ConfigInvalid` naming the
option, its value and the file it comes from (see
:class:`precache.confcheck.validate.Files`).
"""

from __future__ import annotations

import difflib
import json
import os
from typing import TYPE_CHECKING, Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from precache import exception, plugins
from precache.conf import ceph as ceph_conf
from precache.conf import schedules as schedules_conf

if TYPE_CHECKING:
    from precache.confcheck.validate import Files

SCHEDULE_PREFIX = schedules_conf.SCHEDULE_GROUP_PREFIX

_PASSWORD_EXAMPLE = ('e.g. auth_type = password with auth_url, username, '
                     'password, project_name, user_domain_name and '
                     'project_domain_name')


def _fail(text: str) -> exception.ConfigInvalid:
    return exception.ConfigInvalid(reason=text)


def _setting(conf: cfg.ConfigOpts, files: Files, group: str,
             name: str) -> str:
    """``[group] name = value in <file>`` for a message."""
    value = conf[name] if group == 'DEFAULT' else conf[group][name]
    return '[%s] %s = %s %s' % (group, name, value, files.origin(group, name))


def _need_file(conf: cfg.ConfigOpts, files: Files, group: str,
               name: str) -> str:
    path = conf[group][name]
    if not os.path.isfile(path):
        raise _fail('%s: no such file' % _setting(conf, files, group, name))
    if not os.access(path, os.R_OK):
        raise _fail('%s: not readable by this user'
                    % _setting(conf, files, group, name))
    return str(path)


def _need_writable_dir(conf: cfg.ConfigOpts, files: Files, group: str,
                       name: str) -> None:
    """The folder, or its nearest existing parent, takes new files."""
    path = os.path.abspath(conf[group][name])
    if os.path.exists(path) and not os.path.isdir(path):
        raise _fail('%s: not a directory' % _setting(conf, files, group,
                                                     name))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _fail('%s: %s is not writable by this user' % (
            _setting(conf, files, group, name), existing))


def _need_auth(conf: cfg.ConfigOpts, files: Files, group: str, why: str,
               endpoint_alone: bool = True) -> None:
    """``[group]`` can authenticate (or, if allowed, names an endpoint)."""
    section = conf[group]
    auth_type = section.auth_type
    if not auth_type:
        if endpoint_alone and section.endpoint_override:
            return
        where = ('%s has no [%s] section' % (files.main, group)
                 if not files.has_section(group) else
                 'not set in [%s] of %s' % (group, files.main))
        raise _fail('%s needs [%s] auth_type and its options (%s%s); %s' % (
            why, group, _PASSWORD_EXAMPLE,
            ', or endpoint_override for a service without Keystone'
            if endpoint_alone else '', where))
    try:
        loader: Any = ks_loading.get_plugin_loader(auth_type)
    except ks_exc.NoMatchingPlugin:
        names = sorted(ks_loading.get_available_plugin_names())
        near = difflib.get_close_matches(auth_type, names, n=1)
        raise _fail('invalid value %r for [%s] auth_type %s: not an auth '
                    'plugin%s' % (auth_type, group,
                                  files.origin(group, 'auth_type'),
                                  ' (did you mean %s?)' % near[0]
                                  if near else '')) from None
    try:
        ks_loading.load_auth_from_conf_options(conf, group)
    except ks_exc.MissingRequiredOptions as exc:
        missing = [opt.dest for opt in exc.options]
    else:
        plugin_options = {opt.dest for opt in loader.get_options()}
        missing = []
        if 'password' in plugin_options:
            if not (conf[group].get('username') or
                    conf[group].get('user_id')):
                missing.append('username')
            if not conf[group].get('password'):
                missing.append('password')
    if missing:
        raise _fail('[%s] auth_type = %s %s also needs %s (%s)' % (
            group, auth_type, files.origin(group, 'auth_type'),
            ', '.join(missing), why))


def _need_plugin(conf: cfg.ConfigOpts, files: Files,
                 point: plugins.PlugPoint, group: str, name: str) -> None:
    """The plug-in the option names is installed (its value passed the
    option's choices, but a package may lack the entry point)."""
    plugins.check_names(point, [conf[group][name]],
                        where=files.origin(group, name))


def check_conductor(conf: cfg.ConfigOpts, files: Files) -> None:
    _need_plugin(conf, files, plugins.INVENTORIES, 'inventory', 'driver')
    _need_plugin(conf, files, plugins.IMAGE_SERVICES, 'image_service',
                 'driver')
    if conf.inventory.driver == 'static':
        _need_file(conf, files, 'inventory', 'static_file')
    else:
        _need_auth(conf, files, 'nova', '[inventory] driver = nova')
    if conf.image_service.driver == 'local':
        path = _need_file(conf, files, 'image_service', 'local_catalog')
        try:
            with open(path) as stream:
                images = json.load(stream)
        except ValueError as exc:
            raise _fail('%s: not JSON: %s' % (
                _setting(conf, files, 'image_service', 'local_catalog'),
                exc)) from None
        if not isinstance(images, list) or not all(
                isinstance(image, dict) and 'id' in image
                for image in images):
            raise _fail('%s: not a JSON list of images with an "id" each '
                        '(see docs/operations.md)' % _setting(
                            conf, files, 'image_service', 'local_catalog'))
    else:
        _need_auth(conf, files, 'glance', '[image_service] driver = glance')
    if conf.service_user.send_service_user_token:
        _need_auth(conf, files, 'service_user',
                   '[service_user] send_service_user_token = true %s'
                   % files.origin('service_user', 'send_service_user_token'),
                   endpoint_alone=False)
    sections = {section for _, section, _ in files.sections()}
    for name in conf.schedules.names or ():
        group = SCHEDULE_PREFIX + name
        if group in sections:
            continue
        others = sorted(section for section in sections
                        if section.startswith(SCHEDULE_PREFIX))
        near = difflib.get_close_matches(group, others, n=1)
        raise _fail('[schedules] names = %s %s lists %s, but no file has a '
                    'section [%s]%s' % (
                        ', '.join(conf.schedules.names),
                        files.origin('schedules', 'names'), name, group,
                        ' (did you mean [%s]?)' % near[0] if near else ''))


def check_agent(conf: cfg.ConfigOpts, files: Files) -> None:
    backends = conf.agent.enabled_backends or []
    available = plugins.AGENT_BACKENDS.names()
    for backend in backends:
        if backend not in available:
            near = difflib.get_close_matches(backend, available, n=1)
            raise _fail('invalid value %r in [agent] enabled_backends %s: '
                        'known backends are %s%s' % (
                            backend,
                            files.origin('agent', 'enabled_backends'),
                            ', '.join(available),
                            ' (did you mean %s?)' % near[0] if near else ''))
    _need_plugin(conf, files, plugins.AGENT_STORES, 'agent', 'store')
    if conf.agent.store == 'file':
        _need_writable_dir(conf, files, 'agent', 'instances_path')
        if conf.agent.lock_path:
            _need_writable_dir(conf, files, 'agent', 'lock_path')
    if 'glance-http' in backends:
        _need_auth(conf, files, 'glance',
                   '[agent] enabled_backends = %s' % ', '.join(backends))
    clusters = list(conf.ceph.other_clusters or ())
    for name in clusters:
        group = ceph_conf.CLUSTER_GROUP_PREFIX + name
        if not files.has_section(group):
            raise _fail('[ceph] other_clusters %s lists %s, but no file has '
                        'a section [%s] with its conf_file' % (
                            files.origin('ceph', 'other_clusters'), name,
                            group))
        if not conf[group].conf_file:
            raise _fail('[%s] conf_file is required (the ceph.conf of '
                        'cluster %s); set it in %s' % (group, name,
                                                       files.main))
    for group in ['ceph'] + [ceph_conf.CLUSTER_GROUP_PREFIX + name
                             for name in clusters]:
        for name in ('conf_file', 'keyring'):
            if conf[group][name]:
                _need_file(conf, files, group, name)
    cluster = conf.rbd_store.cluster
    if conf.agent.store == 'rbd' and cluster and cluster not in clusters:
        raise _fail('%s: not a cluster of [ceph] other_clusters (%s)' % (
            _setting(conf, files, 'rbd_store', 'cluster'),
            ', '.join(clusters) or 'none'))


def check_api(conf: cfg.ConfigOpts, files: Files) -> None:
    if conf.api.auth_strategy == 'keystone':
        if 'keystone_authtoken' not in conf:
            ks_loading.register_auth_conf_options(conf, 'keystone_authtoken')
        _need_auth(conf, files, 'keystone_authtoken',
                   '[api] auth_strategy = keystone %s'
                   % files.origin('api', 'auth_strategy'),
                   endpoint_alone=False)
    if 'oslo_policy' in conf and files.raw('oslo_policy', 'policy_file'):
        if not conf.find_file(conf.oslo_policy.policy_file):
            raise _fail('%s: no such file (absolute, or relative to the '
                        'folder of the config file)' % _setting(
                            conf, files, 'oslo_policy', 'policy_file'))


SERVICE_CHECKS: dict[str, tuple[Any, ...]] = {
    'precache-conductor': (check_conductor,),
    'precache-agent': (check_agent,),
    'precache-api': (check_api,),
}
