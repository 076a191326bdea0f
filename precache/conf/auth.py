"""keystoneauth1 options for a service client group (ironic's pattern).

``[glance]``, ``[nova]`` and ``[service_user]`` each carry the auth plugin
options (``auth_type`` + the plugin's own, loaded when the file is read),
the session options (TLS, timeout) and, for a service we call, the adapter
options (service type, interface, region, ``endpoint_override``). Options
are registered at import, read at use (``precache.clients.keystone``).
"""

from __future__ import annotations

import copy

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

#: Catalog interfaces tried in order when none is configured.
DEFAULT_VALID_INTERFACES = ['internal', 'public']


def register_auth_opts(conf: cfg.ConfigOpts, group: str,
                       service_type: str | None = None) -> None:
    """Register session, auth and (with a service type) adapter options."""
    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)
    if service_type:
        ks_loading.register_adapter_conf_options(conf, group,
                                                 include_deprecated=False)
        conf.set_default('valid_interfaces', DEFAULT_VALID_INTERFACES,
                         group=group)
        conf.set_default('service_type', service_type, group=group)


def add_auth_opts(options: list[cfg.Opt],
                  service_type: str | None = None) -> list[cfg.Opt]:
    """``options`` plus every keystoneauth option, for the sample file.

    The password plugins' options are listed because they are what an
    operator sets; other plugins' options load dynamically all the same.
    """
    opts = copy.deepcopy(options)

    def add(new: list[cfg.Opt]) -> None:
        names = {opt.name for opt in opts}
        opts.extend(opt for opt in new if opt.name not in names)

    add(ks_loading.get_auth_common_conf_options())
    for name in ('password', 'v3password'):
        add(ks_loading.get_auth_plugin_conf_options(
            ks_loading.get_plugin_loader(name)))
    add(ks_loading.get_session_conf_options())
    if service_type:
        adapter = ks_loading.get_adapter_conf_options(
            include_deprecated=False)
        cfg.set_defaults(adapter, service_type=service_type,
                         valid_interfaces=DEFAULT_VALID_INTERFACES)
        add(adapter)
    opts.sort(key=lambda opt: opt.name)
    return opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Nothing of its own: the groups that use it register through it."""


def list_opts() -> list[cfg.Opt]:
    return []
