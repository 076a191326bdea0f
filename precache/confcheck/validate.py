"""Start-up check of the configuration: every value, section and file.

oslo.config converts a value when it is first read, so a bad one would
surface in the middle of a job, and it ignores sections and options it
does not know, so a misspelt one silently leaves the default in force.
:func:`check` reads every option once, compares the files with the
options precache and its libraries know, and checks what each service
needs (sections for its auth strategy and drivers, the files it reads).
A problem is one :class:`~precache.exception.ConfigInvalid` line naming
the option and the file; an unknown name is a warning with the nearest
known one. What each service needs is in :mod:`precache.confcheck.needs`.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg, types
from stevedore import named

from precache import exception
from precache.conf import ceph as ceph_conf
from precache.conf import schedules as schedules_conf
from precache.confcheck import needs

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
    for service_check in needs.SERVICE_CHECKS.get(prog, ()):
        service_check(conf, files)
    return warnings


class Files:
    """The config files oslo.config read, parsed again by its own parser.

    oslo.config's location of a value names the last file having the
    value's *section*, not the file that set the value; this is exact.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 paths: list[str] | None = None,
                 folders: list[str] | None = None) -> None:
        """``paths``/``folders``: the files and directories to read, when
        ``conf`` could not parse its command line to say so itself."""
        self.conf = conf
        if paths is None and folders is None:
            try:
                paths = list(conf.config_file or [])
                folders = list(conf.config_dir or [])
            except cfg.NoSuchOptError:  # NOTE: command line not parsed
                pass
        paths, folders = list(paths or []), list(folders or [])
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


#: What oslo.config prints, then exits 1, when a command-line option
#: (``debug``, ``use_json``, ...) set in a file has a bad value: it checks
#: those while parsing, before :func:`check` can run.
_CLI_OPTION_VALUE = re.compile(r'^argument --(?P<name>\w+): Invalid .* '
                               r'value: ', re.MULTILINE)


def cli_option_error(conf: cfg.ConfigOpts, said: str,
                     args: list[str]) -> str | None:
    """oslo.config's complaint ``said`` of a command-line option's bad
    value in a file, as :func:`check` words a bad value: the option, the
    file, what it must be. None when ``said`` is about something else.

    ``args``: the command line ``conf`` was given (it could not keep it).
    """
    match = _CLI_OPTION_VALUE.search(said)
    if not match:
        return None
    name = match.group('name')
    given = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    given.add_argument('--config-file', action='append')
    given.add_argument('--config-dir', action='append')
    known, _ = given.parse_known_args(args)
    files = Files(conf,
                  paths=known.config_file if known.config_file else
                  list(conf.default_config_files or []),
                  folders=known.config_dir if known.config_dir else
                  [d for d in conf.default_config_dirs or []
                   if os.path.isdir(d)])
    raw = files.raw('DEFAULT', name)
    if raw is None:
        return None
    try:
        opt = _opt(conf, 'DEFAULT', name)
    except cfg.Error:
        return None
    return 'invalid value %r for [DEFAULT] %s %s: %s' % (
        raw[1], name, files.origin('DEFAULT', name),
        expected(opt.type, raw[1]))


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
