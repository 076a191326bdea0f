"""The four plug-in points, loaded alike with stevedore from entry points.

Each point is an entry point namespace (setup.cfg) chosen by one option:
agent backends (ordered, ``[agent] enabled_backends``), the agent's cache
store (``[agent] store``), the conductor's image service
(``[image_service] driver``) and inventory (``[inventory] driver``).
A name that is not installed, or a plug-in that cannot be imported, is
one :class:`~precache.exception.ConfigInvalid` line naming the option,
the name and the valid names; a plug-in's own error while it is built
passes through unchanged.
"""

from __future__ import annotations

import dataclasses
import difflib
from importlib import metadata
from typing import Any

from stevedore import driver, named
from stevedore import exception as stevedore_exc

from precache import exception


@dataclasses.dataclass(frozen=True)
class PlugPoint:
    """An entry point namespace and the option that names its plug-ins."""

    namespace: str
    #: ``[group] name`` of the option, for messages.
    option: str
    #: What one plug-in is, for messages (``backend``, ``store``...).
    what: str

    def names(self) -> list[str]:
        """The installed plug-ins' names, sorted."""
        return sorted({entry.name for entry in
                       metadata.entry_points(group=self.namespace)})


AGENT_BACKENDS = PlugPoint('precache.agent.backends',
                           '[agent] enabled_backends', 'backend')
AGENT_STORES = PlugPoint('precache.agent.stores', '[agent] store', 'store')
IMAGE_SERVICES = PlugPoint('precache.image_services',
                           '[image_service] driver', 'image service')
INVENTORIES = PlugPoint('precache.conductor.inventory',
                        '[inventory] driver', 'inventory')

POINTS = (AGENT_BACKENDS, AGENT_STORES, IMAGE_SERVICES, INVENTORIES)


def unknown_reason(point: PlugPoint, unknown: list[str],
                   where: str = '') -> str:
    """``unknown store 'x' in [agent] store: valid choices are file, rbd
    (did you mean ...?)``; ``where``: the value's origin (``in <file>``).
    """
    valid = point.names()
    near = difflib.get_close_matches(unknown[0], valid, n=1) \
        if len(unknown) == 1 else []
    return 'unknown %s%s %s in %s%s: valid choices are %s%s' % (
        point.what, '' if len(unknown) == 1 else 's',
        ', '.join(repr(name) for name in unknown), point.option,
        ' ' + where if where else '', ', '.join(valid) or 'none installed',
        ' (did you mean %s?)' % near[0] if near else '')


def check_names(point: PlugPoint, names: list[str], where: str = '') -> None:
    """Every one of ``names`` is installed, else ConfigInvalid."""
    valid = set(point.names())
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise exception.ConfigInvalid(
            reason=unknown_reason(point, unknown, where))


def _load_failed(point: PlugPoint) -> Any:
    def failed(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        raise exception.ConfigInvalid(
            reason='cannot load %s %r of %s (%s): %s: %s' % (
                point.what, entry_point.name, point.option,
                entry_point.value, type(exc).__name__, exc)) from exc
    return failed


def load_driver(point: PlugPoint, name: str, *args: Any,
                **kwargs: Any) -> Any:
    """The plug-in ``name`` of ``point``, built with these arguments."""
    check_names(point, [name])
    try:
        manager: driver.DriverManager = driver.DriverManager(
            point.namespace, name, invoke_on_load=False,
            on_load_failure_callback=_load_failed(point))
    except (stevedore_exc.NoMatches, stevedore_exc.MultipleMatches) as exc:
        # NOTE: importlib saw it, stevedore's entry point cache did not.
        raise exception.ConfigInvalid(
            reason='%s %r of %s: %s' % (point.what, name, point.option,
                                        exc)) from exc
    return manager.driver(*args, **kwargs)


def load_ordered(point: PlugPoint, names: list[str], *args: Any,
                 **kwargs: Any) -> list[Any]:
    """The plug-ins ``names`` of ``point`` in that order (a name given
    twice is built twice), each built with these arguments."""
    check_names(point, names)
    missing: list[str] = []
    manager: named.NamedExtensionManager = named.NamedExtensionManager(
        point.namespace, list(dict.fromkeys(names)), invoke_on_load=False,
        on_load_failure_callback=_load_failed(point),
        on_missing_entrypoints_callback=missing.extend)
    if missing:
        raise exception.ConfigInvalid(
            reason=unknown_reason(point, sorted(missing)))
    plugins = {ext.name: ext.plugin for ext in manager}
    return [plugins[name](*args, **kwargs) for name in names]

