"""The four plug-in points: loaded alike, refused alike in one line."""

from __future__ import annotations

import pytest

from precache import exception, plugins
from precache.agent import backends, stores
from precache.clients import images
from precache.conductor import inventory


@pytest.mark.parametrize('load,option,valid', [
    (lambda: backends.load(['file', 'nope']), '[agent] enabled_backends',
     'file, glance-http, rbd-clone, rbd-export'),
    (lambda: stores.load(name='nope'), '[agent] store', 'file, rbd'),
    (lambda: images.load('nope'), '[image_service] driver',
     'glance, local'),
    (lambda: inventory.load('nope'), '[inventory] driver', 'nova, static'),
], ids=['backends', 'stores', 'image_services', 'inventory'])
def test_an_unknown_name_is_one_line_naming_option_and_choices(
        load, option, valid):
    with pytest.raises(exception.ConfigInvalid) as caught:
        load()
    message = str(caught.value)
    assert '\n' not in message
    assert "'nope' in %s: valid choices are %s" % (option, valid) \
        in message
    assert message.startswith('unknown ')


def test_a_near_name_is_suggested():
    with pytest.raises(exception.ConfigInvalid,
                       match=r"^unknown backend 'glance-htp' in \[agent\] "
                             r"enabled_backends: valid choices are .* "
                             r"\(did you mean glance-http\?\)$"):
        backends.load(['glance-htp'])


def test_several_unknown_names_are_listed():
    with pytest.raises(exception.ConfigInvalid,
                       match=r"^unknown backends 'a', 'b' in "):
        plugins.check_names(plugins.AGENT_BACKENDS, ['file', 'a', 'b'])


def test_every_point_loads_its_default(conf):
    assert [type(b).__name__ for b in backends.load()] == ['FileBackend']
    assert type(stores.load()).__name__ == 'FileStore'
    assert type(images.load()).__name__ == 'LocalImageService'
    assert type(inventory.load()).__name__ == 'StaticInventory'


def test_glance_plugs_in_without_images_importing_it(conf):
    conf.config(group='image_service', driver='glance')
    service = images.load()
    assert type(service).__module__ == 'precache.clients.glance'
    assert isinstance(service, images.ImageService)


def test_a_plugin_that_cannot_be_imported_names_its_entry_point(
        monkeypatch):
    from stevedore import driver

    real = driver.DriverManager.__init__

    def broken(self, namespace, name, **kwargs):
        kwargs['on_load_failure_callback'](
            self, type('EP', (), {'name': name,
                                  'value': 'precache.agent.stores.rbd:X'}),
            ImportError('no module named rados'))
        real(self, namespace, name, **kwargs)  # pragma: no cover

    monkeypatch.setattr(driver.DriverManager, '__init__', broken)
    with pytest.raises(exception.ConfigInvalid) as caught:
        stores.load(name='rbd')
    assert str(caught.value) == (
        "cannot load store 'rbd' of [agent] store "
        "(precache.agent.stores.rbd:X): ImportError: no module named rados")


def test_every_point_is_declared():
    assert {point.namespace for point in plugins.POINTS} == {
        'precache.agent.backends', 'precache.agent.stores',
        'precache.image_services', 'precache.conductor.inventory'}
    for point in plugins.POINTS:
        assert point.names(), point
