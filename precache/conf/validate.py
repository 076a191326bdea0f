"""Start-up check of the configuration: every value, section and file.

oslo.config converts a value when it is first read, so a bad one would
surface in the middle of a job, and it ignores sections and options it
does not know, so a misspelt one silently leaves the default in force.
:func:`check` reads every option once, compares the files with the
options precache and its libraries know, and checks what each service
needs (sections for its auth strategy and drivers, the files it reads).
A problem is one :class:`~precache.exception.ConfigInvalid` line naming
the option and the file; an unknown name is a warning with the nearest
known one.
"""

from __future__ import annotations

import difflib
import glob
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg, types
from stevedore import named

from precache import exception
from precache.conf import ceph as ceph_conf
from precache.conf import schedules as schedules_conf

LOG = logging.getLogger(__name__)

#: What oslo-config-generator documents (etc/precache/
#: precache-config-generator.conf): every section any precache service
#: reads, so one file shared by all of them raises no false warning.
NAMESPACES = ('precache', 'oslo.messaging', 'oslo.log', 'oslo.policy',
              'oslo.middleware.http_proxy_to_wsgi',
              'keystonemiddleware.auth_token')

#: Sections whose options depend on their own auth_type (keystoneauth1).
AUTH_SECTIONS = ('glance', 'nova', 'service_user', 'keystone_authtoken')

SCHEDULE_PREFIX = schedules_conf.SCHEDULE_GROUP_PREFIX

BACKENDS_NAMESPACE = 'precache.agent.backends'

_PASSWORD_EXAMPLE = ('e.g. auth_type = password with auth_url, username, '
                     'password, project_name, user_domain_name and '
                     'project_domain_name')

Parsed = list[tuple[str, dict[str, dict[str, list[str]]]]]


def check(conf: cfg.ConfigOpts, prog: str) -> list[str]:
    """Refuse a configuration ``prog`` cannot run with; warn of typos.

    :returns: the warnings (already logged).
    :raises: ConfigInvalid, one line naming the option and the file.
    """
    files = Files(conf)
    warnings = unknown_names(conf, files)
    for warning in warnings:
        _warn(conf, warning)
    first_error = next(_value_errors(conf, files), None)
    if first_error:
        raise exception.ConfigInvalid(reason=first_error)
    for service_check in SERVICE_CHECKS.get(prog, ()):
        service_check(conf, files)
    return warnings


class Files:
    """The config files oslo.config read, parsed again by its own parser.

    oslo.config's location of a value names the last file having the
    value's *section*, not the file that set the value; this is exact.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        try:
            paths = list(conf.config_file or [])
            folders = list(conf.config_dir or [])
        except cfg.NoSuchOptError:  # NOTE: the command line was not parsed
            paths, folders = [], []
        for folder in folders:
            paths += sorted(glob.glob(os.path.join(folder, '*.conf')))
        paths = [os.path.abspath(path) for path in paths]
        self.parsed: Parsed = []
        for path in paths:
            sections: dict[str, dict[str, list[str]]] = {}
            try:
                cfg.ConfigParser(path, sections).parse()
            except (OSError, cfg.ParseError):
                continue  # NOTE: oslo.config reported it already
            self.parsed.append((path, sections))

    @property
    def main(self) -> str:
        """The file an operator edits: the first one read."""
        if self.parsed:
            return self.parsed[0][0]
        return '/etc/precache/precache.conf'

    def raw(self, group: str, name: str) -> tuple[str, str] | None:
        """``(file, text)`` of the value in force, None if no file sets it."""
        found = None
        for path, sections in self.parsed:
            values = sections.get(group, {}).get(name)
            if values:
                found = (path, values[-1])
        return found

    def sections(self) -> Iterator[tuple[str, str, dict[str, list[str]]]]:
        for path, sections in self.parsed:
            for section, options in sections.items():
                yield path, section, options

    def has_section(self, group: str) -> bool:
        return any(group in sections for _, sections in self.parsed)

    def origin(self, group: str, name: str) -> str:
        """Where a value comes from, for a message (never a repr)."""
        raw = self.raw(group, name)
        if raw:
            return 'in %s' % raw[0]
        env = _env_name(group, name)
        if env in os.environ:
            return 'in environment variable %s' % env
        try:
            location = self.conf.get_location(
                name, None if group == 'DEFAULT' else group)
        except (cfg.Error, ValueError):
            location = None
        if location is not None and location.location in (
                cfg.Locations.set_default, cfg.Locations.set_override):
            return '(set by the program)'
        try:
            default = _opt(self.conf, group, name).default
        except cfg.Error:
            default = None
        return '(%snot set in %s)' % (
            'the default; ' if default is not None else '', self.main)


def origin(conf: cfg.ConfigOpts, group: str, name: str) -> str:
    """Where the value of ``[group] name`` comes from: "in <file>",
    "(not set in <file>)", for a message that names the file."""
    return Files(conf).origin(group, name)


def _env_name(group: str, name: str) -> str:
    return 'OS_%s__%s' % (group.upper(), name.upper())


def _warn(conf: cfg.ConfigOpts, text: str) -> None:
    LOG.warning('Configuration: %s', text)
    to_terminal = conf.use_stderr or not (
        conf.log_file or conf.log_dir or conf.use_journal
        or conf.use_syslog or conf.log_config_append)
    if not to_terminal:
        # NOTE: the log goes to a file: say it where the operator who
        # started the service looks too.
        sys.stderr.write('WARNING: %s\n' % text)


def _register_dynamic_groups(conf: cfg.ConfigOpts) -> None:
    """Groups named by other options, so their values are checked too."""
    for name in conf.schedules.names or ():
        schedules_conf.register_schedule(conf, name)
    for name in conf.ceph.other_clusters or ():
        ceph_conf.cluster_group(conf, name)


# -- values ---------------------------------------------------------------


def _registered(conf: cfg.ConfigOpts) -> Iterator[tuple[str, str]]:
    """Every registered ``(group, option)``; DEFAULT as 'DEFAULT'."""
    for key in list(conf):
        if key in conf._groups:  # noqa: SLF001 - no public listing
            for name in list(conf[key]):
                yield key, name
        else:
            yield 'DEFAULT', key


def _opt(conf: cfg.ConfigOpts, group: str, name: str) -> cfg.Opt:
    # NOTE: oslo.config has no public way to reach a registered Opt.
    return conf._get_opt_info(  # noqa: SLF001
        name, None if group == 'DEFAULT' else group)['opt']


def _value_errors(conf: cfg.ConfigOpts, files: Files) -> Iterator[str]:
    for group, name in _registered(conf):
        try:
            if group == 'DEFAULT':
                conf[name]
            else:
                conf[group][name]
        except cfg.RequiredOptError:
            yield '[%s] %s is required; set it in %s' % (
                group, name, files.main)
        except (cfg.ConfigSourceValueError, ValueError):
            opt = _opt(conf, group, name)
            raw = files.raw(group, name)
            text = raw[1] if raw else os.environ.get(
                _env_name(group, name), opt.default)
            yield 'invalid value %r for [%s] %s %s: %s' % (
                text, group, name, files.origin(group, name),
                expected(opt.type, text))
        except cfg.Error as exc:
            yield '[%s] %s %s: %s' % (group, name, files.origin(group, name),
                                      scrub(str(exc)))


_LOCATION = re.compile(r" from LocationInfo\(location=<[^>]*>, "
                       r"detail=(?:'(?P<detail>[^']*)'|None)\)")


def scrub(text: str) -> str:
    """An oslo.config message with "in <file>" for the LocationInfo(...)
    repr it embeds."""
    return _LOCATION.sub(lambda match: ' in %s' % match.group('detail')
                         if match.group('detail') else '', text)


def expected(type_: Any, text: Any) -> str:
    """What a value of ``type_`` must be, in words, ``text`` being wrong."""
    choices = getattr(type_, 'choices', None)
    if isinstance(type_, types.Boolean):
        return 'must be true or false'
    if isinstance(type_, (types.Integer, types.Float)):
        kind, convert = (('an integer', int)
                         if isinstance(type_, types.Integer)
                         else ('a number', float))
        try:
            convert(str(text).strip())
        except ValueError:
            return 'must be %s' % kind
        low, high = type_.min, type_.max
        if choices:
            return 'must be one of %s' % ', '.join(map(str, choices))
        if low is not None and high is not None:
            return 'must be between %s and %s' % (low, high)
        if low is not None:
            return 'must be at least %s' % low
        if high is not None:
            return 'must be at most %s' % high
    if choices:
        names = [str(choice) for choice in choices]
        near = difflib.get_close_matches(str(text), names, n=1)
        return 'must be one of %s%s' % (
            ', '.join(names), ' (did you mean %s?)' % near[0] if near else '')
    if isinstance(type_, types.HostAddress):
        return 'must be an IP address or a host name'
    if isinstance(type_, types.URI):
        return 'must be a URL such as https://host:port/path'
    if isinstance(type_, types.Dict):
        return 'must be key:value pairs separated by commas'
    try:
        type_(text)
    except ValueError as exc:
        return scrub(str(exc))
    return 'not accepted'


# -- unknown sections and options -----------------------------------------


def known_options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """Section → option names precache or one of its libraries reads."""
    _register_dynamic_groups(conf)
    known: dict[str, set[str]] = {}

    def add(group: str, options: list[cfg.Opt]) -> None:
        names = known.setdefault(group, set())
        for opt in options:
            names.add(opt.dest)
            for old in getattr(opt, 'deprecated_opts', ()):
                known.setdefault(old.group or group, set()).add(
                    (old.name or opt.dest).replace('-', '_'))

    manager: Any = named.NamedExtensionManager(
        'oslo.config.opts', names=list(NAMESPACES), invoke_on_load=True)
    for extension in manager:
        listing: Any = extension.obj
        for group, options in listing:
            name = getattr(group, 'name', group) or 'DEFAULT'
            add(name, list(options))
    for group, name in _registered(conf):
        known.setdefault(group, set()).add(name)
    # NOTE: a template, listed for the sample file only.
    known.pop(SCHEDULE_PREFIX + 'name', None)
    return known


def _plugin_options(auth_type: str) -> set[str]:
    try:
        loader: Any = ks_loading.get_plugin_loader(auth_type)
    except ks_exc.NoMatchingPlugin:
        return set()
    names = set()
    for opt in loader.get_options():
        names.add(opt.dest)
        names.update(old.name.replace('-', '_') for old in opt.deprecated)
    return names


def unknown_names(conf: cfg.ConfigOpts, files: Files) -> list[str]:
    """A warning per section or option of the files that nothing reads."""
    known = known_options(conf)
    # NOTE: auth_type decides which options an auth section has; an
    # auth_section moves them to the section it names.
    for section in AUTH_SECTIONS:
        raw_type = files.raw(section, 'auth_type')
        raw_section = files.raw(section, 'auth_section')
        target = raw_section[1] if raw_section else section
        if raw_type or files.raw(target, 'auth_type'):
            auth_type = (files.raw(target, 'auth_type') or raw_type or
                         ('', ''))[1]
            known.setdefault(target, set()).update(
                _plugin_options(auth_type), {'auth_type'})
    warnings = []
    for path, section, options in files.sections():
        if section not in known:
            near = difflib.get_close_matches(section, list(known), n=1)
            warnings.append('unknown section [%s] in %s: ignored%s' % (
                section, path,
                ' (did you mean [%s]?)' % near[0] if near else ''))
            continue
        for name in options:
            if name in known[section]:
                continue
            near = difflib.get_close_matches(name, list(known[section]),
                                             n=1)
            hint = ' (did you mean %s?)' % near[0] if near else ''
            if not near:
                elsewhere = sorted(group for group, names in known.items()
                                   if name in names)
                if elsewhere:
                    hint = ' (it belongs in [%s])' % elsewhere[0]
            warnings.append('unknown option %s in [%s] of %s: ignored%s'
                            % (name, section, path, hint))
    return warnings


# -- what each service needs ----------------------------------------------


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


def check_conductor(conf: cfg.ConfigOpts, files: Files) -> None:
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
    available = _backend_names()
    for backend in backends:
        if backend not in available:
            near = difflib.get_close_matches(backend, available, n=1)
            raise _fail('invalid value %r in [agent] enabled_backends %s: '
                        'known backends are %s%s' % (
                            backend,
                            files.origin('agent', 'enabled_backends'),
                            ', '.join(available),
                            ' (did you mean %s?)' % near[0] if near else ''))
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


def _backend_names() -> list[str]:
    return sorted(entry.name for entry in
                  metadata.entry_points(group=BACKENDS_NAMESPACE))


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
