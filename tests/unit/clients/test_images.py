"""Image ids, Glance documents and the local image service."""

from __future__ import annotations

import json
import os

import pytest

from precache import exception, objects
from precache.clients import images

ID = '4a9f6f8e-3c1d-4b4b-9a55-0f5b7d3f2e11'
ID2 = 'c0ffee00-0000-4000-8000-000000000002'


@pytest.mark.parametrize('given', [
    ID, ID.upper(), ID.replace('-', ''), '{%s}' % ID, 'urn:uuid:%s' % ID,
])
def test_normalize_accepts_uuid_forms(given):
    assert images.normalize_ids([given]) == [ID]


def test_normalize_keeps_order():
    assert images.normalize_ids([ID2, ID]) == [ID2, ID]


def test_normalize_rejects_an_empty_list():
    with pytest.raises(exception.InvalidImageList, match='no image given'):
        images.normalize_ids([])


@pytest.mark.parametrize('given', [
    'cirros', ID[:-1], ID + '0', ' %s' % ID, '', 42, None,
])
def test_normalize_rejects_non_uuids(given):
    with pytest.raises(exception.InvalidImageList,
                       match='is not an image UUID'):
        images.normalize_ids([ID2, given])


@pytest.mark.parametrize('pair', [
    [ID, ID], [ID, ID.upper()], [ID.replace('-', ''), '{%s}' % ID]])
def test_normalize_rejects_duplicates_after_normalisation(pair):
    with pytest.raises(exception.InvalidImageList) as info:
        images.normalize_ids([ID2, *pair])
    assert str(info.value) == 'Invalid image list: duplicate image(s): ' + ID


def test_spec_from_glance():
    spec = images.spec_from_glance({
        'id': ID, 'name': 'cirros', 'size': 10, 'disk_format': 'raw',
        'checksum': 'c' * 32, 'os_hash_algo': 'sha512',
        'os_hash_value': 'a' * 128, 'status': 'active',
        'locations': [{'url': 'rbd://fsid/images/%s/snap' % ID,
                       'metadata': {}},
                      {'url': ''}, 'not-a-dict', {'metadata': {}}],
        'direct_url': 'file:///var/lib/glance/images/%s' % ID})
    assert spec == objects.ImageSpec(
        id=ID, size=10, name='cirros', disk_format='raw',
        checksum='c' * 32, os_hash_algo='sha512',
        os_hash_value='a' * 128,
        locations=('rbd://fsid/images/%s/snap' % ID,
                   'file:///var/lib/glance/images/%s' % ID))


def test_spec_from_glance_direct_url_not_repeated():
    url = 'rbd://fsid/images/%s/snap' % ID
    spec = images.spec_from_glance({'id': ID, 'direct_url': url,
                                    'locations': [{'url': url}]})
    assert spec.locations == (url,)


def test_spec_from_glance_minimal():
    spec = images.spec_from_glance({'id': ID, 'locations': None})
    assert spec == objects.ImageSpec(id=ID)


def _catalog(tmp_path, entries) -> str:
    folder = tmp_path / 'images'
    folder.mkdir(exist_ok=True)
    path = folder / 'catalog.json'
    path.write_text(json.dumps(entries))
    return str(path)


def test_local_locations_resolved_against_the_catalog_folder(tmp_path):
    catalog = _catalog(tmp_path, [{
        'id': ID, 'status': 'active', 'size': 3,
        'locations': [{'url': 'cirros.raw'}, {'url': 'sub/other.raw'},
                      {'url': '/abs/x.raw'},
                      {'url': 'file:///abs/y.raw'}]}])
    service = images.LocalImageService(catalog)
    folder = os.path.dirname(catalog)
    image = service.get(ID)
    assert [loc['url'] for loc in image['locations']] == [
        'file://' + os.path.join(folder, 'cirros.raw'),
        'file://' + os.path.join(folder, 'sub', 'other.raw'),
        '/abs/x.raw', 'file:///abs/y.raw']


def test_relative_catalog_path(tmp_path, monkeypatch):
    _catalog(tmp_path, [{'id': ID, 'status': 'active',
                         'locations': [{'url': 'a.raw'}]}])
    monkeypatch.chdir(tmp_path)
    service = images.LocalImageService(os.path.join('images',
                                                    'catalog.json'))
    assert service.get(ID)['locations'] == [
        {'url': 'file://%s' % (tmp_path / 'images' / 'a.raw')}]


def test_validate_returns_specs_in_request_order(tmp_path):
    catalog = _catalog(tmp_path, [
        {'id': ID, 'status': 'active', 'size': 3, 'name': 'one',
         'locations': [{'url': 'one.raw'}]},
        {'id': ID2, 'status': 'active', 'size': 4, 'name': 'two'}])
    specs = images.LocalImageService(catalog).validate(
        [ID2.upper(), ID])
    assert [s.id for s in specs] == [ID2, ID]
    assert specs[0].locations == ()
    assert specs[1].locations == ('file://%s' % os.path.join(
        os.path.dirname(catalog), 'one.raw'),)


@pytest.mark.parametrize('status', ['queued', 'saving', 'deactivated',
                                    None])
def test_validate_refuses_inactive_images(tmp_path, status):
    entry = {'id': ID}
    if status:
        entry['status'] = status
    catalog = _catalog(tmp_path, [entry])
    with pytest.raises(exception.ImageNotUsable) as info:
        images.LocalImageService(catalog).validate([ID])
    assert 'status is %s, not active' % status in str(info.value)


def test_validate_unknown_image(tmp_path):
    catalog = _catalog(tmp_path, [])
    with pytest.raises(exception.ImageNotFound) as info:
        images.LocalImageService(catalog).validate([ID])
    assert info.value.kwargs == {'image': ID}


def test_validate_checks_ids_first(tmp_path):
    service = images.LocalImageService(str(tmp_path / 'missing.json'))
    with pytest.raises(exception.InvalidImageList):
        service.validate(['not-an-id'])


@pytest.mark.parametrize('content', [None, '[{"id": '])
def test_unreadable_catalog_is_unavailable(tmp_path, content):
    path = tmp_path / 'catalog.json'
    if content is not None:
        path.write_text(content)
    with pytest.raises(exception.ServiceUnavailable) as info:
        images.LocalImageService(str(path)).get(ID)
    assert str(path) in str(info.value)


def test_load_reads_the_configured_catalog(tmp_path, conf):
    catalog = _catalog(tmp_path, [{'id': ID, 'status': 'active'}])
    conf.config(group='image_service', local_catalog=catalog)
    service = images.load()
    assert isinstance(service, images.LocalImageService)
    assert service.get(ID)['id'] == ID


def test_local_locations_survive_url_syntax_in_paths(tmp_path):
    from precache.agent.backends.file import FileBackend, local_path

    folder = tmp_path / 'demo #1 %41 ?'
    folder.mkdir()
    (folder / 'a?b#c.raw').write_bytes(b'xyz')
    catalog = folder / 'catalog.json'
    catalog.write_text(json.dumps([{
        'id': ID, 'status': 'active', 'size': 3,
        'locations': [{'url': 'a?b#c.raw'}]}]))
    spec = images.LocalImageService(str(catalog)).validate([ID])[0]
    assert local_path(spec.locations[0]) == str(folder / 'a?b#c.raw')
    assert FileBackend().unsupported_reason(spec) is None
